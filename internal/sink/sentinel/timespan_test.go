package sentinel

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/defenderharvester/defenderharvester/internal/delivery"
	"github.com/defenderharvester/defenderharvester/internal/record"
)

func TestRequestsStayWithinTheTimeSpan(t *testing.T) {
	t0 := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	at := func(mins ...int) []record.Record {
		var out []record.Record
		for i, m := range mins {
			out = append(out, record.Record{ID: string(rune('a' + i)), Time: t0.Add(time.Duration(m) * time.Minute)})
		}
		return out
	}
	shape := func(t *testing.T, gs [][]record.Record, span time.Duration) []int {
		var n []int
		for _, g := range gs {
			n = append(n, len(g))
			for _, r := range g {
				if span > 0 && (r.Time.Sub(g[0].Time) > span || g[0].Time.Sub(r.Time) > span) {
					t.Fatalf("group spans more than %s: %v", span, g)
				}
			}
		}
		return n
	}
	tests := []struct {
		name string
		recs []record.Record
		span time.Duration
		want []int
	}{
		{"within the span: one call", at(0, 10, 30), 30 * time.Minute, []int{3}},
		{"a day of sparse events", at(0, 45, 90, 600, 601), 30 * time.Minute, []int{1, 1, 1, 2}},
		{"unsorted input", at(600, 0, 601, 10), 30 * time.Minute, []int{2, 2}},
		{"split off", at(0, 600), 0, []int{2}},
		{"one record", at(5), 30 * time.Minute, []int{1}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			gs := groupsOf(t, timeOrdered(tt.recs, tt.span), tt.span)
			got := shape(t, gs, tt.span)
			if len(got) != len(tt.want) {
				t.Fatalf("groups %v, want %v", got, tt.want)
			}
			total := 0
			for i := range got {
				if got[i] != tt.want[i] {
					t.Fatalf("groups %v, want %v", got, tt.want)
				}
				total += got[i]
			}
			if total != len(tt.recs) {
				t.Fatalf("%d records in groups, %d given", total, len(tt.recs))
			}
		})
	}
}

// groupsOf packs recs the way the sink's exporter does (Apart from
// withinSpan) and returns the records of each request.
func groupsOf(t *testing.T, recs []record.Record, span time.Duration) [][]record.Record {
	t.Helper()
	var (
		mu  sync.Mutex
		out [][]record.Record
	)
	cfg := delivery.Config{Apart: withinSpan(span), Concurrency: 1}
	exp, err := delivery.New("test", cfg, delivery.JSONArray,
		func(dst []byte, r *record.Record) ([]byte, error) { return append(dst, `{}`...), nil },
		func(_ context.Context, req *delivery.Request) error {
			mu.Lock()
			out = append(out, req.Records)
			mu.Unlock()
			return nil
		}, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := exp.Write(context.Background(), "T", recs); err != nil {
		t.Fatal(err)
	}
	return out
}
