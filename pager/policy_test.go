package pager

import (
	"errors"
	"strings"
	"testing"
)

func TestParsePolicy(t *testing.T) {
	for _, tc := range []struct {
		name, in string
		want     Policy
		err      error
	}{
		{"empty", "", Policy{}, nil},
		{"comments only", "# nothing\n\n   # at all\n", Policy{}, nil},
		{"all keys", "prefetch = 7\nworkers 3 # three\nreclaim_batch=16\nlocal = 1GiB\nmax_region 64GiB\n",
			Policy{Prefetch: 7, Workers: 3, ReclaimBatch: 16, Local: 1 << 30, MaxRegion: 64 << 30,
				Has: KeyPrefetch | KeyWorkers | KeyReclaimBatch | KeyLocal | KeyMaxRegion}, nil},
		{"zero prefetch", "prefetch 0", Policy{Has: KeyPrefetch}, nil},
		{"unknown key", "prefetsh = 3", Policy{}, ErrPolicyKey},
		{"repeated key", "workers 1\nworkers 2", Policy{}, ErrPolicyKey},
		{"three fields", "workers 1 2", Policy{}, ErrPolicySyntax},
		{"no value", "workers =", Policy{}, ErrPolicySyntax},
		{"two equals", "workers = 1 = 2", Policy{}, ErrPolicySyntax},
		{"key alone", "workers", Policy{}, ErrPolicySyntax},
		{"not a number", "workers = many", Policy{}, ErrPolicyValue},
		{"prefetch too large", "prefetch = 64", Policy{}, ErrPolicyValue},
		{"negative", "reclaim_batch = -1", Policy{}, ErrPolicyValue},
		{"zero workers", "workers = 0", Policy{}, ErrPolicyValue},
		{"bad size", "local = 1.5GiB", Policy{}, ErrPolicyValue},
		{"zero size", "local = 0", Policy{}, ErrPolicyValue},
		{"too large", strings.Repeat("#", MaxPolicySize+1), Policy{}, ErrPolicyTooLarge},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := ParsePolicy(strings.NewReader(tc.in))
			if tc.err != nil {
				if !errors.Is(err, tc.err) {
					t.Fatalf("ParsePolicy: %v, want %v", err, tc.err)
				}
				return
			}
			if err != nil || got != tc.want {
				t.Fatalf("ParsePolicy = %+v, %v; want %+v", got, err, tc.want)
			}
		})
	}
}

func TestPolicyApply(t *testing.T) {
	c := Config{Prefetch: 1, Workers: 2}
	Policy{Workers: 9, Has: KeyWorkers}.Apply(&c)
	if c.Workers != 9 || c.Prefetch != 1 {
		t.Fatalf("Apply: %+v", c)
	}
}

// FuzzParsePolicy: any input either parses, and its encoding parses back to
// the same policy, or fails with exactly one of the named errors.
func FuzzParsePolicy(f *testing.F) {
	for _, s := range []string{"", "prefetch = 7\nworkers 3\n", "local = 1GiB # c\n", "x", "workers = 1 = 2",
		"max_region 64GiB\nreclaim_batch=1024"} {
		f.Add(s)
	}
	named := []error{ErrPolicySyntax, ErrPolicyKey, ErrPolicyValue, ErrPolicyTooLarge}
	f.Fuzz(func(t *testing.T, in string) {
		p, err := ParsePolicy(strings.NewReader(in))
		if err != nil {
			n := 0
			for _, e := range named {
				if errors.Is(err, e) {
					n++
				}
			}
			if n != 1 {
				t.Fatalf("error %v matches %d named errors, want 1", err, n)
			}
			return
		}
		q, err := ParsePolicy(strings.NewReader(p.String()))
		if err != nil || q != p {
			t.Fatalf("round trip of %+v: %+v, %v (encoded %q)", p, q, err, p.String())
		}
	})
}
