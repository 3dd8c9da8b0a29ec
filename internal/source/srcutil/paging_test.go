package srcutil

import (
	"fmt"
	"strings"
	"testing"
)

// service is a paged list as a portal service may serve it: rows 0..rows-1,
// pages clamped to clamp rows (0: no clamp), offsets counted in the size
// served or the size asked, a total that may lie, and a service that may
// ignore pageIndex.
type service struct {
	rows, clamp   int
	offsetByAsked bool
	total         int // -1: no total; -2: the true row count
	ignoreIndex   bool
}

func (s service) page(index, size int) (ids []string, total int64) {
	served := size
	if s.clamp > 0 && served > s.clamp {
		served = s.clamp
	}
	off := (index - 1) * served
	if s.offsetByAsked {
		off = (index - 1) * size
	}
	if s.ignoreIndex {
		off = 0
	}
	for i := off; i < off+served && i < s.rows; i++ {
		ids = append(ids, fmt.Sprint(i))
	}
	switch s.total {
	case -2:
		return ids, int64(s.rows)
	default:
		return ids, int64(s.total)
	}
}

// drain pages svc with a Pager asking size rows a page; it returns the
// distinct rows read, the requests made and the error.
func drain(svc service, size int) (rows map[string]bool, reqs []string, err error) {
	rows = map[string]bool{}
	pg := NewPager("src", size, 1000)
	for {
		idx, sz, err := pg.Next()
		if err != nil {
			return rows, reqs, err
		}
		reqs = append(reqs, fmt.Sprintf("%d/%d", idx, sz))
		ids, total := svc.page(idx, sz)
		more, err := pg.Add(ids, total)
		if err != nil {
			return rows, reqs, err
		}
		for _, id := range ids {
			rows[id] = true
		}
		if !more {
			return rows, reqs, nil
		}
	}
}

func TestPager(t *testing.T) {
	tests := []struct {
		name     string
		svc      service
		size     int
		wantRows int
		wantReqs string // pageIndex/pageSize of each request; "" = not checked
		wantErr  string
	}{
		{name: "with total: short last page ends", svc: service{rows: 5, total: -2}, size: 2, wantRows: 5, wantReqs: "1/2,2/2,3/2"},
		{name: "with total: exact multiple confirmed by an empty page", svc: service{rows: 4, total: -2}, size: 2, wantRows: 4, wantReqs: "1/2,2/2,3/2"},
		{name: "with total: one short page that holds all", svc: service{rows: 3, total: -2}, size: 200, wantRows: 3, wantReqs: "1/200"},
		{name: "with total: nothing", svc: service{rows: 0, total: -2}, size: 200, wantRows: 0, wantReqs: "1/200"},
		{name: "with total: clamped, offsets in served size", svc: service{rows: 7, clamp: 3, total: -2}, size: 10, wantRows: 7, wantReqs: "1/10,2/3,3/3"},
		{name: "with total: clamped, offsets in asked size", svc: service{rows: 7, clamp: 3, offsetByAsked: true, total: -2}, size: 10, wantRows: 7, wantReqs: "1/10,2/3,3/3"},
		{name: "with total: clamp with an exact multiple", svc: service{rows: 6, clamp: 3, total: -2}, size: 10, wantRows: 6, wantReqs: "1/10,2/3,3/3"},
		{name: "stale low total does not stop full pages", svc: service{rows: 5, total: 2}, size: 2, wantRows: 5, wantReqs: "1/2,2/2,3/2"},
		{name: "total of zero with rows", svc: service{rows: 3, total: 0}, size: 2, wantRows: 3},
		{name: "stale low total under a clamp", svc: service{rows: 8, clamp: 3, total: 2}, size: 10, wantRows: 8, wantReqs: "1/10,2/3,3/3"},
		{name: "total higher than the rows", svc: service{rows: 5, total: 10}, size: 2, wantErr: "src: the service reported 10 rows, returned 5"},
		{name: "total higher, first page empty", svc: service{rows: 0, total: 4}, size: 2, wantErr: "reported 4 rows, returned 0"},
		{name: "total higher, clamped", svc: service{rows: 5, clamp: 2, total: 8}, size: 10, wantErr: "reported 8 rows, returned 5"},
		{name: "ignored pageIndex with a total", svc: service{rows: 9, total: -2, ignoreIndex: true}, size: 2, wantErr: "page 2 repeats page 1"},
		{name: "ignored pageIndex under a clamp", svc: service{rows: 9, clamp: 2, total: -2, ignoreIndex: true}, size: 5, wantErr: "page 2 repeats page 1"},
		{name: "no total: short first page is probed", svc: service{rows: 3, total: -1}, size: 10, wantRows: 3, wantReqs: "1/10,2/3"},
		{name: "no total: clamped, offsets in served size", svc: service{rows: 8, clamp: 3, total: -1}, size: 10, wantRows: 8, wantReqs: "1/10,2/3,3/3"},
		{name: "no total: clamped, offsets in asked size", svc: service{rows: 8, clamp: 3, offsetByAsked: true, total: -1}, size: 10, wantRows: 8, wantReqs: "1/10,2/3,3/3"},
		{name: "no total: clamp with an exact multiple", svc: service{rows: 9, clamp: 3, total: -1}, size: 10, wantRows: 9, wantReqs: "1/10,2/3,3/3,4/3"},
		{name: "no total: full pages then a short one", svc: service{rows: 5, total: -1}, size: 2, wantRows: 5, wantReqs: "1/2,2/2,3/2"},
		{name: "no total: nothing", svc: service{rows: 0, total: -1}, size: 2, wantRows: 0, wantReqs: "1/2"},
		{name: "no total: ignored pageIndex", svc: service{rows: 9, total: -1, ignoreIndex: true}, size: 2, wantErr: "page 2 repeats page 1"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rows, reqs, err := drain(tt.svc, tt.size)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("err = %v, want %q (requests %s)", err, tt.wantErr, strings.Join(reqs, ","))
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if len(rows) != tt.wantRows {
				t.Errorf("read %d distinct rows, want %d (requests %s)", len(rows), tt.wantRows, strings.Join(reqs, ","))
			}
			if got := strings.Join(reqs, ","); tt.wantReqs != "" && got != tt.wantReqs {
				t.Errorf("requests %s, want %s", got, tt.wantReqs)
			}
		})
	}
}

// A total that grows while paging (rows arriving) is followed, and rows
// that shift onto the next page are not counted twice.
func TestPagerGrowingTotal(t *testing.T) {
	pg := NewPager("src", 2, 100)
	steps := []struct {
		ids   []string
		total int64
		more  bool
	}{
		{[]string{"a", "b"}, 3, true},
		{[]string{"b", "c"}, 4, true}, // "x" was inserted before "b": b shifted
		{[]string{"d"}, 4, false},
	}
	for i, s := range steps {
		if _, _, err := pg.Next(); err != nil {
			t.Fatal(err)
		}
		more, err := pg.Add(s.ids, s.total)
		if err != nil || more != s.more {
			t.Fatalf("step %d: more %v err %v", i, more, err)
		}
	}
	if pg.Read() != 4 {
		t.Errorf("read %d distinct rows, want 4", pg.Read())
	}
}

func TestPagerMaxPages(t *testing.T) {
	pg := NewPager("src", 1, 2)
	for i := range 2 {
		if _, _, err := pg.Next(); err != nil {
			t.Fatal(err)
		}
		pg.Add([]string{fmt.Sprint(i)}, -1)
	}
	if _, _, err := pg.Next(); err == nil || !strings.Contains(err.Error(), "more than 2 pages") {
		t.Errorf("err = %v", err)
	}
}
