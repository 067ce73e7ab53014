package health

import (
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

var rewrite = flag.Bool("rewrite", false, "rewrite the expected decisions in testdata/*.trace from the machine's output")

// TestTraces replays every testdata/*.trace file and compares each decision
// with the one written after "=>". With -rewrite it writes the machine's
// decisions into the files instead; review the diff before committing.
func TestTraces(t *testing.T) {
	files, err := filepath.Glob("testdata/*.trace")
	if err != nil || len(files) == 0 {
		t.Fatalf("no trace files: %v", err)
	}
	for _, file := range files {
		t.Run(filepath.Base(file), func(t *testing.T) {
			text, err := os.ReadFile(file)
			if err != nil {
				t.Fatal(err)
			}
			tr, err := ParseTrace(string(text))
			if err != nil {
				t.Fatal(err)
			}
			got, err := tr.Replay()
			if err != nil {
				t.Fatal(err)
			}
			width := 0
			for _, l := range tr.Lines {
				if l.Repeat > 0 {
					width = max(width, len(l.Input))
				}
			}
			var b strings.Builder
			for i, l := range tr.Lines {
				if l.Repeat == 0 {
					b.WriteString(l.Raw + "\n")
					continue
				}
				fmt.Fprintf(&b, "%-*s => %s\n", width, l.Input, got[i])
				if !*rewrite && got[i] != l.Want {
					t.Errorf("%s:%d: %s\n got  %s\n want %s", file, i+1, l.Input, got[i], l.Want)
				}
			}
			if *rewrite && b.String() != string(text) {
				if err := os.WriteFile(file, []byte(b.String()), 0o644); err != nil {
					t.Fatal(err)
				}
				t.Logf("rewrote %s", file)
			}
		})
	}
}
