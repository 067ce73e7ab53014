package farmem_test

import (
	"context"
	"fmt"
	"log"
	"time"

	"github.com/farmem/farmem"
	"github.com/farmem/farmem/internal/nodeproc"
)

// A region four times larger than its local DRAM budget, on a memnode
// reached over loopback TCP. The memnode here is a child process, as farmem
// bench starts it; in production it runs as `farmem memnode` on another
// machine and Nodes names it.
func Example() {
	node, err := nodeproc.Start(nodeproc.Config{Capacity: 64 << 20, PageSize: 4096})
	if err != nil {
		log.Fatal(err)
	}
	defer node.Stop(5 * time.Second)

	ctx := context.Background()
	r, err := farmem.Open(ctx, farmem.Config{
		Size:  16 << 20, // 16 MiB of far memory
		Local: 4 << 20,  // of which at most 4 MiB is cached here
		Nodes: []string{node.Addr()},
	})
	if err != nil {
		log.Fatal(err)
	}
	defer r.Close()

	// Write a record into every page: the region pages out to the memnode.
	for page := int64(0); page < r.Size()/4096; page++ {
		if _, err := r.WriteAt(fmt.Appendf(nil, "page %d", page), page*4096); err != nil {
			log.Fatal(err)
		}
	}
	// Reading the first page back fetches it over TCP.
	buf := make([]byte, 6)
	if _, err := r.ReadAt(buf, 0); err != nil {
		log.Fatal(err)
	}
	s := r.Stats()
	fmt.Printf("%q, evicted: %v, fetched: %v\n", buf, s.Evictions > 0, s.Faults > 0)
	// Output: "page 0", evicted: true, fetched: true
}
