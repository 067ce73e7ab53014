package health

import (
	"os"
	"path/filepath"
	"testing"
)

// FuzzParseTrace checks that the trace decoder never panics on any input
// and that whatever it accepts replays without error.
func FuzzParseTrace(f *testing.F) {
	files, _ := filepath.Glob("testdata/*.trace")
	for _, file := range files {
		if b, err := os.ReadFile(file); err == nil {
			f.Add(string(b))
		}
	}
	for _, s := range []string{
		"", "\n", "0s ok", "0s ok 1ms x0", "+1ms probe-ok -1", "config k=NaN",
		"config epoch=1\n0s tick => down", "# c => d", "1s bogus", "0s resync-progress 18446744073709551616",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, text string) {
		tr, err := ParseTrace(text)
		if err != nil {
			return
		}
		steps := 0
		for _, l := range tr.Lines {
			steps += l.Repeat
		}
		if steps > 1_000_000 {
			return // accepted, but too long to replay inside the fuzzer
		}
		if _, err := tr.Replay(); err != nil {
			t.Fatalf("accepted trace does not replay: %v", err)
		}
	})
}
