package workload

import (
	"bytes"
	"context"
	"io"
	"testing"
)

func BenchmarkZipfRank(b *testing.B) {
	z, _ := NewZipf(1<<28, DefaultTheta)
	r := splitmix{1}
	var s uint64
	for i := 0; i < b.N; i++ {
		s += z.Rank(r.float())
	}
	_ = s
}

func BenchmarkNewZipf(b *testing.B) {
	for i := 0; i < b.N; i++ {
		NewZipf(1<<30, DefaultTheta)
	}
}

func BenchmarkPerm(b *testing.B) {
	p := newPerm(1<<28+12345, 1)
	var s uint64
	for i := 0; i < b.N; i++ {
		s += p.At(uint64(i) & (1<<28 - 1))
	}
	_ = s
}

func BenchmarkPatternFill(b *testing.B) {
	buf := make([]byte, 4096)
	p := newPattern(1, 2, 3)
	b.SetBytes(4096)
	for i := 0; i < b.N; i++ {
		p.fill(buf, 8192)
	}
}

func BenchmarkPatternCheck(b *testing.B) {
	buf := make([]byte, 4096)
	p := newPattern(1, 2, 3)
	p.fill(buf, 8192)
	b.SetBytes(4096)
	for i := 0; i < b.N; i++ {
		if bad, _ := p.check(buf, 8192); bad != 0 {
			b.Fatal(bad)
		}
	}
}

// BenchmarkStep measures each workload's operation on a plain slice: the
// generator, the shadow check and the copies, without any far memory. It is
// the ceiling farmem bench can reach on this machine.
func BenchmarkStep(b *testing.B) {
	for _, c := range []Config{
		{Name: Seq}, {Name: Uniform}, {Name: ZipfName},
		{Name: KV, Pattern: "a"}, {Name: KV, Pattern: "c"},
		{Name: PageWalk, Pattern: "sequential"}, {Name: PageWalk, Pattern: "zipf"}, {Name: PageWalk, Pattern: "uniform"},
	} {
		c.Size = 64 << 20
		b.Run(c.Name+"/"+c.Pattern, func(b *testing.B) {
			var mem Memory = make(SliceMemory, c.Size)
			w, err := New(c)
			if err != nil {
				b.Fatal(err)
			}
			if err := w.Setup(context.Background(), mem); err != nil {
				b.Fatal(err)
			}
			b.ReportAllocs()
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				if err := w.Step(mem); err != nil {
					b.Fatal(err)
				}
			}
			b.StopTimer()
			if st := w.Stats(); st.Mismatches != 0 {
				b.Fatal(st.Mismatches)
			}
		})
	}
}

func BenchmarkSetup(b *testing.B) {
	for _, name := range []string{Seq, KV, PageWalk} {
		b.Run(name, func(b *testing.B) {
			mem := make(SliceMemory, 64<<20)
			b.SetBytes(int64(len(mem)))
			for i := 0; i < b.N; i++ {
				w, _ := New(Config{Name: name, Size: int64(len(mem))})
				if err := w.Setup(context.Background(), mem); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

func BenchmarkTraceDecode(b *testing.B) {
	as := randomAccesses(1, 100000)
	for _, f := range []Format{Text, Binary} {
		var buf bytes.Buffer
		w, _ := NewTraceWriter(&buf, f)
		for _, a := range as {
			w.Write(a)
		}
		w.Close()
		data := buf.Bytes()
		b.Run(f.String(), func(b *testing.B) {
			b.ReportMetric(float64(len(data))/float64(len(as)), "bytes/access")
			b.ReportAllocs()
			for i := 0; i < b.N; i++ {
				r, _, _ := NewTraceReader(bytes.NewReader(data))
				for {
					if _, err := r.Next(); err == io.EOF {
						break
					} else if err != nil {
						b.Fatal(err)
					}
				}
			}
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*len(as)), "ns/access")
		})
	}
}
