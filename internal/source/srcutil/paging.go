package srcutil

// Pager drives pageIndex/pageSize paging of a list and decides when the
// list is complete. The services' largest page is undocumented for most
// portal lists and a service may clamp pageSize silently, so "a page
// shorter than asked ends the list" alone would truncate without a word.
// The rules:
//
//   - A full page (as many rows as asked, or more) always asks for the
//     next one, whatever the total says: a stale, low total must not end
//     paging while rows keep coming.
//   - A short first page is taken as the service's clamp, not as the end,
//     unless the response's total says every row was read: from then on
//     pages are asked in that size. (Asking pageIndex 2 in the clamped
//     size reads the rows right after the first page whether the service
//     counts offsets in the size asked or in the size it served.) Without
//     a total this costs one extra request whenever a list fits in one
//     page.
//   - With a total, a later short page ends paging only once the total
//     is reached; an empty page ends paging, and if fewer rows than the
//     total were read that is an error ("the service reported N rows,
//     returned M"). The total of the latest page counts, so a total that
//     grows while paging (new rows arriving) is followed.
//   - Without a total, a short page after the first ends paging. A total
//     below the rows already read is stale and counts as no total.
//   - A page whose first row is the previous page's first row means the
//     service ignored pageIndex: an error, not a loop. Rows repeated from
//     the previous page (rows shifting when new ones are inserted) are not
//     counted twice towards the total.
//   - At most maxPages pages.
type Pager struct {
	src       string
	size      int
	maxPages  int
	index     int
	read      int64
	total     int64
	prevFirst string
	prev      map[string]struct{}
}

// NewPager starts paging src with pages of size rows, at most maxPages
// pages.
func NewPager(src string, size, maxPages int) *Pager {
	return &Pager{src: src, size: size, maxPages: maxPages, total: -1}
}

// Next returns the pageIndex (1-based) and pageSize of the next request;
// an error once maxPages pages were read.
func (p *Pager) Next() (index, size int, err error) {
	if p.index >= p.maxPages {
		return 0, 0, shapef("%s: more than %d pages without reaching the end of the list; the service does not seem to end it (or lower the range read at once)", p.src, p.maxPages)
	}
	p.index++
	return p.index, p.size, nil
}

// Read is the number of distinct rows read so far.
func (p *Pager) Read() int64 { return p.read }

// Add takes the ids (or keys) of the page just read, in page order, and
// the total the page reported (-1: none). It reports whether another page
// must be read, or an error when the page repeats the previous one or the
// list ended short of its total.
func (p *Pager) Add(ids []string, total int64) (more bool, err error) {
	n := len(ids)
	if n > 0 && p.index > 1 && ids[0] == p.prevFirst {
		return false, shapef("%s: page %d repeats page %d (the service ignored pageIndex); refusing to loop", p.src, p.index, p.index-1)
	}
	cur := make(map[string]struct{}, n)
	for _, id := range ids {
		if _, again := p.prev[id]; !again {
			if _, dup := cur[id]; !dup {
				p.read++
			}
		}
		cur[id] = struct{}{}
	}
	p.prev = cur
	if n > 0 {
		p.prevFirst = ids[0]
	}
	if total >= 0 {
		p.total = total
	}
	// A total below the rows already read is stale: it cannot say where
	// the list ends, so the rules without a total apply.
	known := p.total >= 0 && p.read <= p.total
	switch {
	case n == 0:
		return false, p.complete()
	case n >= p.size:
		return true, nil
	case known && p.read < p.total:
		if p.index == 1 {
			p.size = n // the service's clamp
		}
		return true, nil
	case !known && p.index == 1:
		p.size = n // a clamp, or the whole list: the next page tells
		return true, nil
	}
	return false, p.complete()
}

func (p *Pager) complete() error {
	return CheckTotal(p.src, p.total, p.read)
}

// CheckTotal fails when a list reported a total (≥ 0) larger than the
// rows read. More rows than the total is a stale total and accepted.
func CheckTotal(src string, total, read int64) error {
	if total >= 0 && read < total {
		return shapef("%s: the service reported %d rows, returned %d: the list is incomplete, so it was not accepted (it is read again on the next run)", src, total, read)
	}
	return nil
}
