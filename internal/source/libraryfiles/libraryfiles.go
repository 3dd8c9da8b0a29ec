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
}

// DecodePage reads {"value":[…],"@odata.nextLink":…}; items are keyed by
// fileName.
func DecodePage(body []byte) (Page, error) {
	items, err := srcutil.DecodeList(Name, body, srcutil.Envelope{Keys: []string{"value"}}, "fileName")
	if err != nil {
		return Page{}, err
	}
	next, err := srcutil.NextLink(Name, body)
	if err != nil {
		return Page{}, err
	}
	return Page{Items: items, NextLink: next}, nil
}

type src struct {
	srcutil.Meta
	api mde.PublicAPI
}

// Snapshot reads every page and emits only a complete, unique set.
func (s *src) Snapshot(ctx context.Context, emit source.Emit) error {
	all := srcutil.NewPages(Name)
	links := srcutil.Cursors{}
	link := ""
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
		if p.NextLink == "" {
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
		Name: Name, Table: Table, Kind: source.Snapshot, API: "public", DefaultEnabled: true,
		Description: "Live Response library: scripts and tools that can be pushed to and run on devices",
		New: func(deps source.Deps, _ any) (source.Source, error) {
			if err := srcutil.NeedPublic(Name, deps); err != nil {
				return nil, err
			}
			return &src{Meta: srcutil.NewMeta(Name, Table, source.Snapshot), api: deps.API}, nil
		},
	})
}
