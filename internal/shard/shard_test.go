package shard

import (
	"fmt"
	"strings"
	"testing"
)

func tenants(n int) []string {
	out := make([]string, n)
	for i := range out {
		out[i] = fmt.Sprintf("tenant-%05d", i)
	}
	return out
}

func TestEveryTenantHasExactlyOneOwner(t *testing.T) {
	for n := 1; n <= 16; n++ {
		for _, key := range tenants(1000) {
			o := Owner(key, n)
			if o < 0 || o >= n {
				t.Fatalf("Owner(%q, %d) = %d, outside the replicas", key, n, o)
			}
			owners := 0
			for i := -1; i <= n; i++ { // the indexes around the range own nothing
				if Owns(key, i, n) {
					owners++
					if i != o {
						t.Fatalf("Owns(%q, %d, %d) but Owner says %d", key, i, n, o)
					}
				}
			}
			if owners != 1 {
				t.Fatalf("%q has %d owners among %d replicas", key, owners, n)
			}
		}
	}
}

// TestGrowingMovesOnlyToTheNewReplica: adding replica n moves only keys
// that now belong to it, about 1/(n+1) of them, and the load is even.
func TestGrowingMovesOnlyToTheNewReplica(t *testing.T) {
	keys := tenants(10000)
	t.Logf("%-12s %8s %8s %8s %16s", "replicas", "moved", "share", "ideal", "per replica")
	for n := 1; n < 16; n++ {
		moved := 0
		load := make([]int, n+1)
		for _, key := range keys {
			before, after := Owner(key, n), Owner(key, n+1)
			load[after]++
			if before != after {
				moved++
				if after != n {
					t.Fatalf("%q moved from %d to %d when replica %d was added; only moves to the new replica are allowed", key, before, after, n)
				}
			}
		}
		share, ideal := float64(moved)/float64(len(keys)), 1/float64(n+1)
		minLoad, maxLoad := load[0], load[0]
		for _, l := range load {
			minLoad, maxLoad = min(minLoad, l), max(maxLoad, l)
		}
		t.Logf("%2d → %-7d %8d %8.3f %8.3f %7d–%-7d", n, n+1, moved, share, ideal, minLoad, maxLoad)
		// ±15% of the ideal is beyond 3.5 standard deviations for 10,000 keys.
		if share < ideal*0.85 || share > ideal*1.15 {
			t.Errorf("%d → %d replicas moved %.3f of the tenants, want about %.3f", n, n+1, share, ideal)
		}
		perReplica := float64(len(keys)) / float64(n+1)
		if float64(minLoad) < perReplica*0.85 || float64(maxLoad) > perReplica*1.15 {
			t.Errorf("%d replicas carry %d to %d tenants each, want about %.0f", n+1, minLoad, maxLoad, perReplica)
		}
	}
}

// TestOwnerIsPinned: ownership must agree across versions during a rolling
// upgrade. These values come from an independent implementation (Python,
// FNV-1a 64 + the paper's jump hash); a change of hash or algorithm fails
// here.
func TestOwnerIsPinned(t *testing.T) {
	counts := [6]int{2, 3, 5, 10, 16, 1000}
	tests := []struct {
		key  string
		want [6]int
	}{
		{"72f988bf-86f1-41af-91ab-2d7cd011db47", [6]int{1, 1, 4, 4, 4, 889}},
		{"00000000-0000-0000-0000-000000000000", [6]int{1, 1, 1, 1, 11, 211}},
		{"contoso", [6]int{0, 2, 2, 2, 14, 443}},
		{"fabrikam", [6]int{1, 1, 1, 6, 11, 633}},
		{"woodgrove", [6]int{0, 0, 0, 0, 0, 618}},
		{"tenant-0001", [6]int{0, 0, 0, 0, 0, 581}},
		{"tenant-0999", [6]int{1, 1, 3, 3, 3, 646}},
		{"", [6]int{1, 1, 1, 1, 13, 266}},
	}
	for _, tt := range tests {
		for i, n := range counts {
			if got := Owner(tt.key, n); got != tt.want[i] {
				t.Errorf("Owner(%q, %d) = %d, want %d", tt.key, n, got, tt.want[i])
			}
		}
	}
}

func TestOwnerWithoutReplicas(t *testing.T) {
	for _, n := range []int{-5, 0, 1} {
		if got := Owner("contoso", n); got != 0 {
			t.Fatalf("Owner with %d replicas = %d, want 0 (one replica owns all)", n, got)
		}
	}
	if Owns("contoso", 0, 0) || Owns("contoso", 1, 1) || Owns("contoso", -1, 2) {
		t.Fatal("an index outside the replicas must own nothing")
	}
	if got := Owner("contoso", 1<<40); got < 0 {
		t.Fatalf("Owner with a huge count = %d", got)
	}
}

func TestParseIndex(t *testing.T) {
	tests := []struct {
		in, host string
		want     int
		err      string
	}{
		{"0", "", 0, ""},
		{" 7 ", "", 7, ""},
		{"auto", "defenderharvester-3", 3, ""},
		{"AUTO", "harvest-eu-west-12", 12, ""},
		{"auto", "defenderharvester-03", 3, ""},
		{"auto", "defenderharvester", 0, `host name "defenderharvester" does not end in -<number>`},
		{"auto", "defenderharvester-", 0, "does not end in -<number>"},
		{"auto", "defenderharvester--1", 1, ""},
		{"auto", "defenderharvester-+1", 0, "does not end in -<number>"},
		{"auto", "web-7f9c6d-x2x4q", 0, "does not end in -<number>"}, // a Deployment's pod: use a StatefulSet
		{"auto", "", 0, "does not end in -<number>"},
		{"auto", "h-99999999999999999999999", 0, "does not end in -<number>"},
		{"-1", "", 0, "expected a number"},
		{"+1", "", 0, "expected a number"},
		{"", "", 0, "expected a number"},
		{"three", "", 0, `shard index "three": expected a number (0, 1, …) or "auto"`},
	}
	for _, tt := range tests {
		t.Run(tt.in+"/"+tt.host, func(t *testing.T) {
			got, err := parseIndex(tt.in, tt.host)
			if tt.err != "" {
				if err == nil || !strings.Contains(err.Error(), tt.err) {
					t.Fatalf("parseIndex(%q, %q) = %d, %v; want an error saying %q", tt.in, tt.host, got, err, tt.err)
				}
				return
			}
			if err != nil || got != tt.want {
				t.Fatalf("parseIndex(%q, %q) = %d, %v; want %d", tt.in, tt.host, got, err, tt.want)
			}
		})
	}
	t.Setenv("HOSTNAME", "defenderharvester-5")
	if got, err := ParseIndex("auto"); err != nil || got != 5 {
		t.Fatalf("ParseIndex(auto) with HOSTNAME=defenderharvester-5 = %d, %v", got, err)
	}
}

func TestCheckIndex(t *testing.T) {
	for _, tt := range []struct {
		index, count int
		ok           bool
	}{{0, 1, true}, {2, 3, true}, {3, 3, false}, {-1, 3, false}, {0, 0, false}} {
		if err := CheckIndex(tt.index, tt.count); (err == nil) != tt.ok {
			t.Errorf("CheckIndex(%d, %d) = %v", tt.index, tt.count, err)
		}
	}
}

func FuzzParseIndex(f *testing.F) {
	for _, s := range []string{"0", "auto", "-1", "99999999999999999999", " 3", "3a"} {
		f.Add(s, "defenderharvester-3")
	}
	f.Fuzz(func(t *testing.T, s, host string) {
		n, err := parseIndex(s, host)
		if err != nil {
			if n != 0 || !strings.HasPrefix(err.Error(), "shard index") {
				t.Fatalf("parseIndex(%q, %q) = %d, %v", s, host, n, err)
			}
			return
		}
		if n < 0 {
			t.Fatalf("parseIndex(%q, %q) = %d: negative", s, host, n)
		}
	})
}
