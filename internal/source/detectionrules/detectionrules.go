// Package detectionrules harvests the custom detection rules from
// Microsoft Graph (snapshot source, table MdeDetectionRules): each rule as
// Graph returns it, with who created and last changed it and when.
package detectionrules

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"

	"github.com/defenderharvester/defenderharvester/internal/mde"
	"github.com/defenderharvester/defenderharvester/internal/source"
	"github.com/defenderharvester/defenderharvester/internal/source/srcutil"
)

const (
	// Name is the source's config key.
	Name = "detectionrules"
	// Table is where its records land.
	Table = "MdeDetectionRules"
	// KeyField is the rule's id in the Graph object.
	KeyField = "id"
	// DefaultPageSize is the $top asked per page (the service may serve
	// fewer; the list is read through @odata.nextLink to its end).
	DefaultPageSize = 100
	maxPageSize     = 1000
)

// Config are the source's settings.
type Config struct {
	// APIVersion is the Graph version read: beta (default) or v1.0.
	APIVersion string `yaml:"api_version"`
	// PageSize is $top, the rules asked per page (default 100, 1–1000).
	PageSize int `yaml:"page_size"`
	// Count asks $count=true and checks the reported @odata.count
	// against the rules read (default true).
	Count bool `yaml:"count"`
}

// NewConfig returns the defaults.
func NewConfig() *Config {
	return &Config{APIVersion: mde.GraphBeta, PageSize: DefaultPageSize, Count: true}
}

// Validate checks the settings at config load; errors name the key.
func (c *Config) Validate() error {
	if c.APIVersion != mde.GraphBeta && c.APIVersion != mde.GraphV1 {
		return fmt.Errorf("api_version %q must be %s or %s", c.APIVersion, mde.GraphBeta, mde.GraphV1)
	}
	return srcutil.CheckInt("page_size", c.PageSize, 1, maxPageSize)
}

// Page is one decoded Graph page.
type Page struct {
	Items    []source.Item
	NextLink string
	Count    int64 // -1 when the page reported none
}

// DecodePage reads one Graph page (mde.DecodeGraphPage: {"value":[…]},
// @odata.nextLink, @odata.count) and keys its rules by id; the raw rule
// objects are passed on unchanged. For tests and fuzzing: the client
// pages, the source keys.
func DecodePage(body []byte) (Page, error) {
	p, err := mde.DecodeGraphPage(body)
	if err != nil {
		return Page{}, shape(fmt.Errorf("%s: %w", Name, err))
	}
	items, err := Items(p.Items)
	if err != nil {
		return Page{}, err
	}
	return Page{Items: items, NextLink: p.NextLink, Count: p.Count}, nil
}

// Items keys rule objects by their id (a non-empty string or number);
// an id seen twice fails the whole snapshot.
func Items(rules []json.RawMessage) ([]source.Item, error) {
	return srcutil.SnapshotItems(Name, rules, srcutil.NewKeys(Name), KeyField)
}

type src struct {
	srcutil.Meta
	graph mde.GraphAPI
	opts  mde.GraphListOptions
}

// Snapshot reads every rule (the client follows and validates
// @odata.nextLink and checks @odata.count) and emits them only when the
// list is complete and every id unique.
// Attribution: Graph names a rule's last editor and creator, which the
// change records carry as ChangedBy and ChangedAt.
func (s *src) Attribution() source.Attribution {
	return source.Attribution{EditedBy: []string{"lastModifiedBy"}, EditedAt: []string{"lastModifiedDateTime"},
		CreatedBy: []string{"createdBy"}, CreatedAt: []string{"createdDateTime"}}
}

func (s *src) Snapshot(ctx context.Context, emit source.Emit) error {
	rules, err := s.graph.DetectionRules(ctx, s.opts)
	if err != nil {
		return shape(fmt.Errorf("%s: %w", Name, err))
	}
	items, err := Items(rules)
	if err != nil {
		return err
	}
	return srcutil.EmitAll(ctx, emit, items)
}

// shape marks the Graph client's shape and paging-loop errors as
// answer-shape errors (srcutil.ErrShape, one kind in the metrics),
// keeping their text.
func shape(err error) error {
	if errors.Is(err, mde.ErrGraphShape) || errors.Is(err, mde.ErrGraphLinkLoop) {
		return &shapeError{err}
	}
	return err
}

type shapeError struct{ err error }

func (e *shapeError) Error() string        { return e.err.Error() }
func (e *shapeError) Unwrap() error        { return e.err }
func (e *shapeError) Is(target error) bool { return target == srcutil.ErrShape }

// NeedGraph is the error the source returns when built without the
// Graph client.
func NeedGraph(deps source.Deps) error {
	if deps.Graph == nil {
		return fmt.Errorf("%s: needs Microsoft Graph: configure the public_api app registration (tenant id, client id, secret or certificate) and grant it the Microsoft Graph application permission CustomDetection.Read.All with admin consent, or disable this source", Name)
	}
	return nil
}

func init() {
	source.Register(source.Factory{
		// Rules change rarely; hourly is soon enough to alert. Off by
		// default: it needs its own Graph permission.
		Schedule: "1h",
		Name:     Name, Table: Table, Kind: source.Snapshot, API: "public", DefaultEnabled: false,
		Description: "Custom detection rules from Microsoft Graph: definition, enabled, schedule, and who created and last changed each rule and when (CustomDetection.Read.All)",
		NewConfig:   func() any { return NewConfig() },
		New: func(deps source.Deps, cfg any) (source.Source, error) {
			c, err := srcutil.Settings(Name, cfg, NewConfig)
			if err != nil {
				return nil, err
			}
			if err := NeedGraph(deps); err != nil {
				return nil, err
			}
			return &src{Meta: srcutil.NewMeta(Name, Table, source.Snapshot), graph: deps.Graph,
				opts: mde.GraphListOptions{Version: c.APIVersion, Top: c.PageSize, Count: c.Count}}, nil
		},
	})
}
