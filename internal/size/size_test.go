package size

import (
	"errors"
	"testing"
)

func TestParse(t *testing.T) {
	good := []struct {
		in   string
		want uint64
	}{
		{"4096", 4096}, {"0", 0}, {"64KiB", 64 << 10}, {"512MiB", 512 << 20}, {"2GiB", 2 << 30},
		{"1G", 1 << 30}, {"1g", 1 << 30}, {"3 MB", 3 << 20}, {"7b", 7}, {" 1k ", 1024},
		{"15EiB", 15 << 60}, {"18446744073709551615", 1<<64 - 1},
	}
	for _, tc := range good {
		got, err := Parse(tc.in)
		if err != nil || got != tc.want {
			t.Errorf("Parse(%q) = %d, %v; want %d", tc.in, got, err, tc.want)
		}
	}
	bad := []struct {
		in   string
		want error
	}{
		{"", ErrSyntax}, {"G", ErrSyntax}, {"1.5G", ErrSyntax}, {"-1", ErrSyntax}, {"12 apples", ErrSyntax},
		{"16EiB", ErrRange}, {"18446744073709551616", ErrRange}, {"99999999999T", ErrRange},
	}
	for _, tc := range bad {
		if _, err := Parse(tc.in); !errors.Is(err, tc.want) {
			t.Errorf("Parse(%q) error %v, want %v", tc.in, err, tc.want)
		}
	}
}

func TestFormat(t *testing.T) {
	for in, want := range map[uint64]string{0: "0B", 4096: "4KiB", 1536: "1536B", 2 << 30: "2GiB"} {
		if got := Format(in); got != want {
			t.Errorf("Format(%d) = %q, want %q", in, got, want)
		}
	}
}

// FuzzParse checks that Parse never panics, fails only with a named error, and
// that Format's output parses back to the same value.
func FuzzParse(f *testing.F) {
	for _, s := range []string{"4096", "64KiB", "512MiB", "2GiB", "1G", "1.5G", "", "99999999999999999999", "16EiB"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		n, err := Parse(s)
		if err != nil {
			if !errors.Is(err, ErrSyntax) && !errors.Is(err, ErrRange) {
				t.Fatalf("unnamed error %v", err)
			}
			return
		}
		if back, err := Parse(Format(n)); err != nil || back != n {
			t.Fatalf("Format(%d)=%q parses to %d, %v", n, Format(n), back, err)
		}
	})
}
