package delivery

import (
	"context"
	"encoding/json"
	"fmt"
	"testing"
	"time"

	"github.com/defenderharvester/defenderharvester/internal/record"
)

// FuzzPack feeds arbitrary record sizes, limits and 413 thresholds and
// checks that no body passes a limit and every record is accounted for
// exactly once (delivered or dead-lettered).
func FuzzPack(f *testing.F) {
	f.Add([]byte{10, 200, 3, 90}, uint16(500), uint8(3), uint16(400), true)
	f.Add([]byte{255, 255, 1}, uint16(64), uint8(0), uint16(0), false)
	f.Add([]byte{}, uint16(10), uint8(1), uint16(50), true)
	f.Add([]byte{10, 22, 30, 39, 40}, uint16(400), uint8(0), uint16(0), true)
	f.Fuzz(func(t *testing.T, sizes []byte, maxBytes uint16, maxRecords uint8, serverMax uint16, array bool) {
		if len(sizes) > 2000 { // keep each run fast; size variety matters, not count
			sizes = sizes[:2000]
		}
		framing := Concatenated
		if array {
			framing = JSONArray
		}
		in := make([]record.Record, len(sizes))
		for i, s := range sizes {
			in[i] = record.Record{ID: fmt.Sprint(i), Raw: json.RawMessage(fmt.Sprintf(`{"p":"%0*d"}`, int(s), 0))}
			if s%17 == 5 { // cannot be encoded: dead-lettered while packing, a gap in its request's records
				in[i].Raw = json.RawMessage(`{"p":`)
			}
		}
		seen := make([]int, len(in))
		send := func(_ context.Context, req *Request) error {
			// The body is exactly the framed encodings of its records.
			want := append([]byte(nil), framing.Open...)
			for i := range req.Records {
				if i > 0 {
					want = append(want, framing.Sep...)
				}
				want, _ = encJSON(want, &req.Records[i])
			}
			want = append(want, framing.Close...)
			if string(want) != string(req.Body) {
				t.Fatalf("body %.200q does not frame its %d records (%.200q)", req.Body, len(req.Records), want)
			}
			if serverMax > 0 && len(req.Body) > int(serverMax) {
				return TooLarge(fmt.Errorf("413"))
			}
			for _, r := range req.Records {
				var i int
				fmt.Sscan(r.ID, &i)
				seen[i]++
			}
			return nil
		}
		dead := &memDL{}
		cfg := testConfig(newClock(), Config{MaxBytes: int(maxBytes), MaxRecords: int(maxRecords), Concurrency: 1, MaxElapsed: time.Hour})
		e, err := New("f", cfg, framing, encJSON, send, dead, nil)
		if err != nil {
			return // settings too small to be valid
		}
		if err := e.Write(context.Background(), "T", in); err != nil {
			t.Fatalf("Write: %v", err)
		}
		for _, id := range dead.ids {
			var i int
			fmt.Sscan(id, &i)
			seen[i]++
		}
		for i, n := range seen {
			if n != 1 {
				t.Fatalf("record %d accounted %d times", i, n)
			}
		}
		limit := int(maxBytes)
		if limit == 0 {
			limit = DefaultMaxBytes
		}
		if st := e.Stats(); st.MaxRequestBytes > int64(limit) {
			t.Fatalf("a body of %d bytes passed max_bytes %d", st.MaxRequestBytes, limit)
		}
	})
}
