package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/spf13/cobra"

	"github.com/farmem/farmem/attach"
	"github.com/farmem/farmem/internal/size"
	"github.com/farmem/farmem/pager"
)

func init() { register(newPagerCmd) }

// pagerFlags are the flags of farmem pager.
type pagerFlags struct {
	socket, local, tokenFile, namespace, policy, maxRegion, statsJSON string
	backup, meta, metaSize, dirtyTracking                             string
	nodes                                                             []string
	workers, prefetch, reclaimBatch                                   int
	verbose, pmQoS                                                    bool
	spin, sampleInterval                                              time.Duration
	samplePages                                                       int
}

func newPagerCmd() *cobra.Command {
	var f pagerFlags
	cmd := &cobra.Command{
		Use:   "pager",
		Short: "Serve transparent far memory: page faults of mapped regions, through userfaultfd",
		Long: `Run the pager daemon: applications attach on --socket (farmem.Map, or the
protocol in docs/TRANSPARENT.md), map a region as plain memory, and hand the
pager their userfaultfd; the pager serves every page fault, keeps at most
--local bytes of all regions resident, and evicts the rest to the memnodes
(--nodes) or, without them, to its own memory.

With --nodes, a region's pages live in the namespace <namespace>-<region id>,
and a pager restarted with the same --nodes and --namespace takes back the
regions of a pager that died (the applications re-attach on their own).
With --backup too, every page is also kept in a local file per region
(<backup>.<region id>): reads a memnode does not answer in time are served
from it, and a restarted pager recovers regions even from memnodes that
lost their pages.
With --meta FILE the pager records in a persistent pool (created if
missing, recovered if present) which pages of each region it wrote to the
far tier, one transaction per eviction batch: a restarted pager given the
same file reports a page the memnodes lost (pager: page missing from the far
tier) instead of serving zeros, even without --backup.
Without --nodes evicted pages die with the pager, and a re-attach is refused.

--policy FILE sets tunables (prefetch, workers, reclaim_batch, local,
max_region), one "key = value" per line; see docs/TRANSPARENT.md. The file
overrides the flags. SIGTERM or SIGINT detaches every region (applications
then block on absent pages until a pager re-attaches) and exits.`,
		Example: `  farmem pager --socket /run/farmem/pager.sock --local 1GiB --nodes 10.0.0.2:7070,10.0.0.3:7070
  farmem pager --socket /tmp/pager.sock --local 256MiB`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			ctx, stop := signal.NotifyContext(cmd.Context(), syscall.SIGTERM, os.Interrupt)
			defer stop()
			return runPager(ctx, f, cmd.OutOrStdout())
		},
	}
	fl := cmd.Flags()
	fl.StringVar(&f.socket, "socket", "", "Unix socket path applications attach on (required)")
	fl.StringVar(&f.local, "local", "", "DRAM budget for all regions' resident pages, e.g. 1GiB (required unless the policy sets local)")
	fl.StringSliceVar(&f.nodes, "nodes", nil, "memnode addresses host:port (default: evicted pages stay in the pager's memory)")
	fl.StringVar(&f.tokenFile, "token-file", "", "file holding the memnodes' token")
	fl.StringVar(&f.namespace, "namespace", "farmem-pager", "prefix of the regions' namespaces on the memnodes")
	fl.StringVar(&f.backup, "backup", "", "local backup of every remote page: region <id>'s file is <backup>.<id hex> (needs --nodes)")
	fl.StringVar(&f.meta, "meta", "", "persistent region table (pmem pool file, created if missing): which pages each region wrote to the far tier (needs --nodes)")
	fl.StringVar(&f.metaSize, "meta-size", "64MiB", "size of a new --meta pool")
	fl.StringVar(&f.policy, "policy", "", "policy file (key = value lines: prefetch, workers, reclaim_batch, local, max_region)")
	fl.StringVar(&f.maxRegion, "max-region", "1TiB", "largest region accepted")
	fl.IntVar(&f.workers, "workers", pager.DefaultWorkers, "fault workers shared by all regions")
	fl.IntVar(&f.prefetch, "prefetch", 0, "absent pages fetched after a faulting page, in the same call (0..63)")
	fl.IntVar(&f.reclaimBatch, "reclaim-batch", pager.DefaultReclaimBatch, "pages per eviction write-back")
	fl.DurationVar(&f.spin, "spin", 0, "after each fault, poll for the next one without sleeping for this long (e.g. 50us; 0: never)")
	fl.DurationVar(&f.sampleInterval, "sample-interval", 0, "access sampling (hint faults): stage up to --sample-pages clean pages of each region this often (0: off)")
	fl.IntVar(&f.samplePages, "sample-pages", 64, "access sampling: staging buffer per region, in pages")
	fl.StringVar(&f.statsJSON, "stats-json", "", "at exit, write the pager's counters as JSON to this file")
	fl.BoolVarP(&f.verbose, "verbose", "v", false, "log every attach and detach")
	fl.BoolVar(&f.pmQoS, "pm-qos", false, pmQoSUsage)
	fl.StringVar(&f.dirtyTracking, "dirty-tracking", pager.DirtyWP, "how written pages are found: wp (a synchronous write-protect fault per first write) or async (UFFD_FEATURE_WP_ASYNC, PAGEMAP_SCAN after a pinned punch; needs shmem huge pages off; no --meta; a pager crash loses async regions)")
	return cmd
}

func runPager(ctx context.Context, f pagerFlags, out io.Writer) error {
	if f.socket == "" {
		return errors.New("pager: --socket is required")
	}
	if err := checkDirtyTracking("pager: --dirty-tracking", f.dirtyTracking); err != nil {
		return err
	}
	if f.dirtyTracking == pager.DirtyAsync && f.meta != "" {
		return errors.New("pager: --dirty-tracking async cannot keep --meta: a pager crash between an eviction's punch and its write-back loses pages that only the pager held")
	}
	release, err := holdPMQoS("pager: --pm-qos", f.pmQoS)
	if err != nil {
		return err
	}
	defer release()
	ps := os.Getpagesize()
	cfg := pager.Config{Workers: f.workers, Prefetch: f.prefetch, ReclaimBatch: f.reclaimBatch, SpinPoll: f.spin,
		SampleInterval: f.sampleInterval, SamplePages: f.samplePages, DirtyTracking: f.dirtyTracking}
	if f.local != "" {
		n, err := size.Parse(f.local)
		if err != nil {
			return fmt.Errorf("pager: --local: %w", err)
		}
		cfg.Local = int64(n)
	}
	mr, err := size.Parse(f.maxRegion)
	if err != nil {
		return fmt.Errorf("pager: --max-region: %w", err)
	}
	cfg.MaxRegion = int64(mr)
	if f.policy != "" {
		pf, err := os.Open(f.policy)
		if err != nil {
			return fmt.Errorf("pager: --policy: %w", err)
		}
		pol, err := pager.ParsePolicy(pf)
		pf.Close()
		if err != nil {
			return fmt.Errorf("pager: --policy %s: %w", f.policy, err)
		}
		pol.Apply(&cfg)
	}
	if cfg.Local == 0 {
		return errors.New("pager: --local is required (e.g. --local 1GiB)")
	}
	far := "the pager's memory (not recoverable after a pager restart)"
	if len(f.nodes) > 0 {
		var token []byte
		if f.tokenFile != "" {
			if token, err = readTokenFile("pager: --token-file", f.tokenFile); err != nil {
				return err
			}
		}
		cfg.NewStore = pager.RemoteStores(f.nodes, token, f.namespace, ps)
		cfg.Recoverable = true
		far = fmt.Sprintf("memnodes %v, namespaces %s-<region>", f.nodes, f.namespace)
		if f.backup != "" {
			cfg.NewStore = pager.ResilientStores(f.nodes, token, f.namespace, ps, f.backup)
			far += fmt.Sprintf(", backup files %s.<region>", f.backup)
		}
	} else {
		if f.backup != "" {
			return errors.New("pager: --backup backs up the memnodes' pages: it needs --nodes")
		}
		cfg.NewStore = pager.MemStores(ps)
	}
	if f.meta != "" {
		if len(f.nodes) == 0 {
			return errors.New("pager: --meta records what the memnodes hold: it needs --nodes")
		}
		ms := uint64(pager.DefaultMetaSize)
		if f.metaSize != "" {
			if ms, err = size.Parse(f.metaSize); err != nil {
				return fmt.Errorf("pager: --meta-size: %w", err)
			}
		}
		m, err := pager.OpenMeta(f.meta, pager.MetaOptions{Namespace: f.namespace, Size: int64(ms)})
		if err != nil {
			return fmt.Errorf("pager: --meta: %w", err)
		}
		defer m.Close()
		cfg.Meta = m
		far += fmt.Sprintf(", metadata %s (%s, %d regions recorded)", f.meta, m.DomainName(), len(m.Regions()))
	}
	cfg.Logf = func(format string, args ...any) {
		if f.verbose {
			fmt.Fprintf(os.Stderr, format+"\n", args...)
		}
	}
	p, err := pager.New(cfg)
	if err != nil {
		return err
	}
	defer p.Close()
	l, err := attach.Listen(f.socket, p.AttachConfig())
	if err != nil {
		return fmt.Errorf("pager: --socket: %w", err)
	}
	defer l.Close()
	fmt.Fprintf(out, "pager listening on %s: budget %s, %d workers, prefetch %d, far tier %s\n",
		f.socket, size.Format(uint64(cfg.Local)), cfg.Workers, cfg.Prefetch, far)
	serr := p.Serve(ctx, l)
	l.Close()
	p.Close()
	if f.statsJSON != "" {
		b, err := json.MarshalIndent(p.Stats(), "", "  ")
		if err == nil {
			err = os.WriteFile(f.statsJSON, append(b, '\n'), 0o644)
		}
		if err != nil {
			return fmt.Errorf("pager: --stats-json: %w", err)
		}
	}
	return serr
}

// checkDirtyTracking checks a --dirty-tracking value.
func checkDirtyTracking(flag, v string) error {
	if v != "" && v != pager.DirtyWP && v != pager.DirtyAsync {
		return fmt.Errorf("%s %q: want %s or %s", flag, v, pager.DirtyWP, pager.DirtyAsync)
	}
	return nil
}
