// Package libraryfiles harvests the Live Response script library from the
// public Defender API (snapshot source, table MdeLibraryFiles).
package libraryfiles

import (
	"context"
	"fmt"

	"github.com/defenderharvester/defenderharvester/internal/mde"
	"github.com/defenderharvester/defenderharvester/internal/source"
	"github.com/defenderharvester/defenderharvester/internal/source/srcutil"
)

const (
	// Name is the source's config key.
	Name = "libraryfiles"
	// Table is where its records land.
	Table = "MdeLibraryFiles"
	// Path is the public API endpoint.
	Path     = "/api/libraryfiles"
	maxPages = 1000
)

// Page is one decoded OData page.
type Page struct {
	Items    []source.Item
	NextLink string
	Total    int64 // -1 when the page reported no total
}

// KeyFields name a file's key, first present wins.
var KeyFields = []string{"fileName", "FileName"}

// DecodePage reads {"value":[…],"@odata.nextLink":…} (or any list envelope,
// see srcutil.ReadList); items are keyed by KeyFields. A total
// (@odata.count and the like) is kept for the check at the end.
func DecodePage(body []byte) (Page, error) {
	l, err := srcutil.ReadList(Name, body, srcutil.ListShape{})
	if err != nil {
		return Page{}, err
	}
	items, err := srcutil.SnapshotItems(Name, l.Records, srcutil.NewKeys(Name), KeyFields...)
	if err != nil {
		return Page{}, err
	}
	next, err := srcutil.LinkOf(Name, l.Object, "@odata.nextLink")
	if err != nil {
		return Page{}, err
	}
	return Page{Items: items, NextLink: next, Total: l.Total}, nil
}

type src struct {
	srcutil.Meta
	api mde.PublicAPI
}

// Attribution: a library file records its uploader and its last
// replacement time (not who replaced it).
func (s *src) Attribution() source.Attribution {
	return source.Attribution{EditedAt: []string{"lastUpdatedTime"}, CreatedBy: []string{"createdBy"}, CreatedAt: []string{"creationTime"}}
}

// Snapshot follows @odata.nextLink (server-driven paging, so a clamped page
// size cannot cut the list) and emits only a complete, unique set; if a
// page reported a total, fewer files than that fail the snapshot.
func (s *src) Snapshot(ctx context.Context, emit source.Emit) error {
	all := srcutil.NewPages(Name)
	links := srcutil.Cursors{}
	link := ""
	total := int64(-1) // OData's count covers all pages
	for page := 1; ; page++ {
		var body []byte
		var err error
		if link == "" {
			body, err = s.api.Get(ctx, Path, nil)
		} else {
			body, err = s.api.GetLink(ctx, link)
		}
		if err != nil {
			return fmt.Errorf("%s page %d: %w", Name, page, err)
		}
		p, err := DecodePage(body)
		if err != nil {
			return fmt.Errorf("page %d: %w", page, err)
		}
		if err := all.Add(p.Items); err != nil {
			return err
		}
		if p.Total >= 0 {
			total = p.Total
		}
		if p.NextLink == "" {
			if err := srcutil.CheckTotal(Name, total, int64(all.Len())); err != nil {
				return err
			}
			break
		}
		if err := links.Follow(p.NextLink); err != nil {
			return fmt.Errorf("%s: %w", Name, err)
		}
		if page >= maxPages {
			return fmt.Errorf("%s: more than %d pages; the API does not seem to end", Name, maxPages)
		}
		link = p.NextLink
	}
	return all.Emit(ctx, emit)
}

func init() {
	source.Register(source.Factory{
		Schedule: "15m", // a new Live Response script is an early sign of abuse
		Name:     Name, Table: Table, Kind: source.Snapshot, API: "public", DefaultEnabled: true,
		Description: "Live Response library: scripts and tools that can be pushed to and run on devices",
		New: func(deps source.Deps, _ any) (source.Source, error) {
			if err := srcutil.NeedPublic(Name, deps); err != nil {
				return nil, err
			}
			return &src{Meta: srcutil.NewMeta(Name, Table, source.Snapshot), api: deps.API}, nil
		},
	})
}
