// Package customdetections harvests custom detection rules and their run
// state (snapshot source, table MdeCustomDetectionState).
package customdetections

import (
	"context"
	"fmt"
	"net/url"
	"strconv"

	"github.com/defenderharvester/defenderharvester/internal/mde"
	"github.com/defenderharvester/defenderharvester/internal/source"
	"github.com/defenderharvester/defenderharvester/internal/source/srcutil"
)

const (
	// Name is the source's config key.
	Name = "customdetections"
	// Table is where its records land.
	Table = "MdeCustomDetectionState"
	// Path is the portal endpoint.
	Path = "/apiproxy/mtp/huntingService/rules/unified"
	// maxPages stops a server that never returns a short page.
	maxPages = 1000
)

// Config are the source's settings.
type Config struct {
	// PageSize is the rules requested per page (default 10000).
	PageSize int `yaml:"page_size"`
}

// NewConfig returns the defaults.
func NewConfig() *Config { return &Config{PageSize: 10000} }

// DecodePage returns the records of one page: a bare array, or an object
// with Rules or Results.
func DecodePage(body []byte) ([]source.Item, error) {
	// Keys are checked across pages by the caller; this only validates the
	// page itself.
	return srcutil.DecodeList(Name, body, srcutil.Envelope{Bare: true, Keys: []string{"Rules", "Results"}}, "Id", "id")
}

type src struct {
	srcutil.Meta
	portal   mde.Portal
	pageSize int
}

// Snapshot pages until a short page and emits only if every page decoded
// and all rule ids are unique.
func (s *src) Snapshot(ctx context.Context, emit source.Emit) error {
	all := srcutil.NewPages(Name)
	for page := 1; ; page++ {
		if page > maxPages {
			return fmt.Errorf("%s: more than %d pages; the API does not seem to end (lower page_size?)", Name, maxPages)
		}
		q := url.Values{
			"pageIndex": {strconv.Itoa(page)}, "pageSize": {strconv.Itoa(s.pageSize)},
			"sortOrder": {"Ascending"}, "isUnifiedRulesListEnabled": {"true"},
		}
		body, err := s.portal.Get(ctx, Path, q)
		if err != nil {
			return fmt.Errorf("%s page %d: %w", Name, page, err)
		}
		items, err := DecodePage(body)
		if err != nil {
			return fmt.Errorf("page %d: %w", page, err)
		}
		if err := all.Add(items); err != nil {
			return err
		}
		if len(items) < s.pageSize {
			break
		}
	}
	return all.Emit(ctx, emit)
}

func init() {
	source.Register(source.Factory{
		Name: Name, Table: Table, Kind: source.Snapshot, API: "portal", DefaultEnabled: true,
		Description: "Custom detection rules: enabled, last run status, failures, auto-disable",
		NewConfig:   func() any { return NewConfig() },
		New: func(deps source.Deps, cfg any) (source.Source, error) {
			c, err := srcutil.CheckConfig[Config](Name, cfg)
			if err != nil {
				return nil, err
			}
			if c.PageSize == 0 {
				c.PageSize = NewConfig().PageSize
			}
			if err := srcutil.IntRange(Name, "page_size", c.PageSize, 1, 10000); err != nil {
				return nil, err
			}
			if err := srcutil.NeedPortal(Name, deps); err != nil {
				return nil, err
			}
			return &src{Meta: srcutil.NewMeta(Name, Table, source.Snapshot), portal: deps.Portal, pageSize: c.PageSize}, nil
		},
	})
}
