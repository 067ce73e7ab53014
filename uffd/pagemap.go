package uffd

import "strings"

// Categories is a set of PAGE_IS_* page categories of the PAGEMAP_SCAN ioctl
// (<linux/fs.h>): what a scan matches on (ScanRequest) and what it reports
// per region (PageRegion.Categories).
type Categories uint64

// Page categories, with the kernel's values.
const (
	// PageWPAllowed: the page is in a range where asynchronous write
	// protection is in force (a userfaultfd with FeatureWPAsync, ModeWP).
	PageWPAllowed Categories = 1 << 0
	// PageWritten: the page was written since it was last write-protected
	// (its uffd-wp bit is clear). A hole (never-touched page) is not
	// written.
	PageWritten Categories = 1 << 1
	// PageFile: the page is backed by a file (shmem and memfd included).
	PageFile Categories = 1 << 2
	// PagePresent: the page is mapped in the page table.
	PagePresent Categories = 1 << 3
	// PageSwapped: the page-table entry is a swap entry. A uffd-wp marker
	// (the protection of a page that is not mapped) is one too.
	PageSwapped Categories = 1 << 4
	// PagePFNZero: the page maps the shared zero page.
	PagePFNZero Categories = 1 << 5
	// PageHuge: the page is part of a THP or hugetlb page.
	PageHuge Categories = 1 << 6
	// PageSoftDirty: the soft-dirty bit is set (Linux 6.8).
	PageSoftDirty Categories = 1 << 7
	// PageGuard: the page is a MADV_GUARD_INSTALL guard page (Linux 6.14).
	PageGuard Categories = 1 << 8
)

var categoryNames = [...]string{
	"WPALLOWED", "WRITTEN", "FILE", "PRESENT", "SWAPPED", "PFNZERO", "HUGE", "SOFT_DIRTY", "GUARD",
}

// String lists the set categories by their kernel names (without the
// PAGE_IS_ prefix), joined with "|".
func (c Categories) String() string {
	if c == 0 {
		return "0"
	}
	var names []string
	for i := 0; i < 64; i++ {
		if c&(1<<i) == 0 {
			continue
		}
		if i < len(categoryNames) {
			names = append(names, categoryNames[i])
		} else {
			names = append(names, "BIT"+itoa(i))
		}
	}
	return strings.Join(names, "|")
}

// ScanFlags are the operation flags of a PAGEMAP_SCAN (PM_SCAN_*).
type ScanFlags uint64

// Scan flags, with the kernel's values.
const (
	// ScanWPMatching write-protects the pages the scan matches, atomically
	// with reporting them (per page-table lock). With Require: PageWritten
	// this is "collect the written pages and re-arm them". Only matching
	// pages are protected (a matching hole gets a uffd-wp marker).
	ScanWPMatching ScanFlags = 1 << 0
	// ScanCheckWPAsync makes the scan fail (ErrScanNotWPAsync) when it meets
	// a mapping without asynchronous write protection, instead of skipping
	// it.
	ScanCheckWPAsync ScanFlags = 1 << 1
)

// PageRegion is one run of pages with the same reported categories, as the
// kernel fills it: struct page_region of <linux/fs.h>, 24 bytes.
//
//	0               8               16              24
//	+---------------+---------------+---------------+
//	|     start     |  end (excl.)  |   categories  |
//	+---------------+---------------+---------------+
type PageRegion struct {
	Start      uint64
	End        uint64
	Categories Categories
}

// Pages returns the number of pages of the region for page size ps.
func (r PageRegion) Pages(ps int) int { return int((r.End - r.Start) / uint64(ps)) }

// ScanRequest says what a PAGEMAP_SCAN matches and reports. A page matches
// when, after flipping the Inverted categories, it has every category in
// Require and, if AnyOf is not empty, at least one of AnyOf.
type ScanRequest struct {
	Flags    ScanFlags
	Require  Categories // category_mask
	AnyOf    Categories // category_anyof_mask
	Inverted Categories // category_inverted
	// Return is the set of categories reported in PageRegion.Categories
	// (return_mask). Adjacent matching pages are merged into one region
	// when their reported categories are equal, so report only what the
	// caller needs.
	Return Categories
	// MaxPages stops the scan after this many matching pages (0: no
	// limit).
	MaxPages int
}

// ScanWrittenAndProtect is the dirty-tracking scan: report the pages written
// since the previous scan and write-protect them again in the same pass, and
// fail rather than skip when a mapping in the range is not under
// asynchronous write protection.
var ScanWrittenAndProtect = ScanRequest{
	Flags:   ScanWPMatching | ScanCheckWPAsync,
	Require: PageWritten,
	Return:  PageWritten,
}
