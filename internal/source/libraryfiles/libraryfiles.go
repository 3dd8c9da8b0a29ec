// Package libraryfiles harvests the Live Response script library from the
// public Defender API (snapshot source, table MdeLibraryFiles).
package libraryfiles

import (
	"bytes"
	"context"
	"encoding/json"
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
	recs, err := srcutil.Items(Name, body, srcutil.Envelope{Keys: []string{"value"}})
	if err != nil {
		return Page{}, err
	}
	items, err := srcutil.SnapshotItems(Name, recs, srcutil.NewKeys(Name), "fileName")
	if err != nil {
		return Page{}, err
	}
	next, err := nextLink(body)
	if err != nil {
		return Page{}, err
	}
	return Page{Items: items, NextLink: next}, nil
}

// nextLink reads @odata.nextLink, which must be a string when present.
func nextLink(body []byte) (string, error) {
	var env struct {
		Next json.RawMessage `json:"@odata.nextLink"`
	}
	if err := json.Unmarshal(body, &env); err != nil {
		return "", fmt.Errorf("%s: %w", Name, err)
	}
	if len(env.Next) == 0 || bytes.Equal(env.Next, []byte("null")) {
		return "", nil
	}
	var s string
	if err := json.Unmarshal(env.Next, &s); err != nil {
		return "", fmt.Errorf("%s: field @odata.nextLink is not a string", Name)
	}
	return s, nil
}

type src struct {
	srcutil.Meta
	api mde.PublicAPI
}

// Snapshot reads every page and emits only a complete, unique set.
func (s *src) Snapshot(ctx context.Context, emit source.Emit) error {
	keys := srcutil.NewKeys(Name)
	seenLinks := map[string]bool{}
	var all []source.Item
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
		for _, it := range p.Items {
			if err := keys.Add(it.Key); err != nil {
				return err
			}
		}
		all = append(all, p.Items...)
		if p.NextLink == "" {
			break
		}
		if seenLinks[p.NextLink] {
			return fmt.Errorf("%s: %w", Name, srcutil.ErrRepeatedLink)
		}
		if page >= maxPages {
			return fmt.Errorf("%s: more than %d pages; the API does not seem to end", Name, maxPages)
		}
		seenLinks[p.NextLink] = true
		link = p.NextLink
	}
	return srcutil.EmitAll(ctx, emit, all)
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
