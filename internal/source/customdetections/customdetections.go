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
	// maxPages stops a server that never ends the list (generous: a
	// clamped page size means many small pages).
	maxPages = 100000
	// maxPageSize is the page the portal itself asks for.
	maxPageSize = 10000
)

// Config are the source's settings.
type Config struct {
	// PageSize is the rules requested per page (default 10000).
	PageSize int `yaml:"page_size"`
}

// NewConfig returns the defaults.
func NewConfig() *Config { return &Config{PageSize: maxPageSize} }

// Validate checks the settings at config load; errors name the key.
func (c *Config) Validate() error {
	return srcutil.CheckInt("page_size", c.PageSize, 1, maxPageSize)
}

// Shape: a bare array per the one Microsoft sample; a {Rules:[…]} wrapper
// was assumed by another tool; the other list envelopes are accepted too.
var Shape = srcutil.ListShape{Keys: []string{"Rules"}}

// KeyFields name a rule's key, first present wins.
var KeyFields = []string{"Id", "id", "RuleId", "ruleId"}

// Page is one decoded page.
type Page struct {
	Total int64 // -1 when the page reported no total
	Items []source.Item
}

// DecodePage returns the rules of one page. Keys are checked across pages
// by the caller; this only validates the page itself.
func DecodePage(body []byte) (Page, error) {
	l, err := srcutil.ReadList(Name, body, Shape)
	if err != nil {
		return Page{}, err
	}
	items, err := srcutil.SnapshotItems(Name, l.Records, srcutil.NewKeys(Name), KeyFields...)
	if err != nil {
		return Page{}, err
	}
	return Page{Total: l.Total, Items: items}, nil
}

type src struct {
	srcutil.Meta
	portal   mde.Portal
	pageSize int
}

// Attribution: a rule records its last editor and creator.
func (s *src) Attribution() source.Attribution {
	return source.Attribution{EditedBy: []string{"LastUpdatedBy"}, EditedAt: []string{"LastUpdateTime"},
		CreatedBy: []string{"CreatedBy"}, CreatedAt: []string{"CreationTime"}}
}

// Snapshot pages with a srcutil.Pager (the list has no total: a short
// first page is probed as a possible clamp) and emits only if every page
// decoded and all rule ids are unique.
func (s *src) Snapshot(ctx context.Context, emit source.Emit) error {
	all := srcutil.NewPages(Name)
	pg := srcutil.NewPager(Name, s.pageSize, maxPages)
	for {
		page, size, err := pg.Next()
		if err != nil {
			return err
		}
		q := url.Values{
			"pageIndex": {strconv.Itoa(page)}, "pageSize": {strconv.Itoa(size)},
			"sortOrder": {"Ascending"}, "isUnifiedRulesListEnabled": {"true"},
		}
		body, err := s.portal.Get(ctx, Path, q)
		if err != nil {
			return fmt.Errorf("%s page %d: %w", Name, page, err)
		}
		p, err := DecodePage(body)
		if err != nil {
			return fmt.Errorf("page %d: %w", page, err)
		}
		more, err := pg.Add(srcutil.KeysOf(p.Items), p.Total)
		if err != nil {
			return err
		}
		if err := all.Add(p.Items); err != nil {
			return err
		}
		if !more {
			break
		}
	}
	return all.Emit(ctx, emit)
}

func init() {
	source.Register(source.Factory{
		Schedule: "1h", // settings change rarely; hourly is soon enough to alert
		Name:     Name, Table: Table, Kind: source.Snapshot, API: "portal", DefaultEnabled: true,
		Description: "Custom detection rules: enabled, last run status, failures, auto-disable",
		NewConfig:   func() any { return NewConfig() },
		New: func(deps source.Deps, cfg any) (source.Source, error) {
			c, err := srcutil.Settings(Name, cfg, NewConfig)
			if err != nil {
				return nil, err
			}
			if err := srcutil.NeedPortal(Name, deps); err != nil {
				return nil, err
			}
			return &src{Meta: srcutil.NewMeta(Name, Table, source.Snapshot), portal: deps.Portal, pageSize: c.PageSize}, nil
		},
	})
}
