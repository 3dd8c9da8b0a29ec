package srcutil

import (
	"context"
	"errors"
	"fmt"
	"net/url"

	"github.com/defenderharvester/defenderharvester/internal/mde"
	"github.com/defenderharvester/defenderharvester/internal/source"
)

// SnapshotList reads a whole snapshot from one list response (see
// ReadList): records keyed by the first present of keyFields, keys
// unique. A total larger than the records fails: the list was cut short
// (the endpoint may have started paging), and a short snapshot would read
// as removals.
func SnapshotList(src string, body []byte, shape ListShape, keyFields ...string) ([]source.Item, error) {
	l, err := ReadList(src, body, shape)
	if err != nil {
		return nil, err
	}
	if err := CheckTotal(src, l.Total, int64(len(l.Records))); err != nil {
		return nil, err
	}
	return SnapshotItems(src, l.Records, NewKeys(src), keyFields...)
}

// PortalSnapshotSpec describes a snapshot source read with one portal GET.
type PortalSnapshotSpec struct {
	Name, Table, Description string
	Path                     string
	Schedule                 string     // default source.DefaultSchedule
	Query                    url.Values // sent as is on every read; may be nil
	// Decode turns the whole body into keyed items or fails.
	Decode func(body []byte) ([]source.Item, error)
	// Attribution names the fields that say who changed an item and when
	// (source.Attributed); zero when the items do not say.
	Attribution source.Attribution
}

// PortalSnapshotFactory is the factory of such a source: enabled by
// default, no settings, needs the portal client.
func PortalSnapshotFactory(spec PortalSnapshotSpec) source.Factory {
	return source.Factory{
		Name: spec.Name, Table: spec.Table, Kind: source.Snapshot, API: "portal", DefaultEnabled: true,
		Description: spec.Description, Schedule: spec.Schedule,
		New: func(deps source.Deps, _ any) (source.Source, error) {
			if err := NeedPortal(spec.Name, deps); err != nil {
				return nil, err
			}
			return &PortalSnapshot{
				Meta: NewMeta(spec.Name, spec.Table, source.Snapshot), Portal: deps.Portal,
				Path: spec.Path, Query: spec.Query, Decode: spec.Decode, Attributes: spec.Attribution,
			}, nil
		},
	}
}

// PortalSnapshot is a snapshot source read with one portal GET.
type PortalSnapshot struct {
	Meta
	Portal mde.Portal
	Path   string
	Query  url.Values
	// Decode turns the whole body into keyed items or fails.
	Decode func(body []byte) ([]source.Item, error)
	// Attributes are the item fields of who changed it and when.
	Attributes source.Attribution
}

var _ source.Attributed = (*PortalSnapshot)(nil)

// Attribution names the fields of who changed an item and when.
func (s *PortalSnapshot) Attribution() source.Attribution { return s.Attributes }

// Snapshot reads and decodes the page, then emits every item. Nothing is
// emitted unless the whole page decoded.
func (s *PortalSnapshot) Snapshot(ctx context.Context, emit source.Emit) error {
	body, err := s.Portal.Get(ctx, s.Path, s.Query)
	if err != nil {
		return fmt.Errorf("%s: %w", s.Name(), err)
	}
	items, err := s.Decode(body)
	if err != nil {
		return err
	}
	return EmitAll(ctx, emit, items)
}

// Pages gathers the items of a paged snapshot: keys must be unique across
// all pages, and nothing is emitted until the last page has been read.
type Pages struct {
	keys  *Keys
	items []source.Item
}

// NewPages starts an empty paged snapshot for src.
func NewPages(src string) *Pages { return &Pages{keys: NewKeys(src)} }

// Add takes one page's items; a key already seen on any page is an error.
func (p *Pages) Add(items []source.Item) error {
	for _, it := range items {
		if err := p.keys.Add(it.Key); err != nil {
			return err
		}
	}
	p.items = append(p.items, items...)
	return nil
}

// Len is the number of items gathered.
func (p *Pages) Len() int { return len(p.items) }

// Emit emits every gathered item in page order.
func (p *Pages) Emit(ctx context.Context, emit source.Emit) error {
	return EmitAll(ctx, emit, p.items)
}

// NeedPortal is the error a portal source returns when built without the
// portal client.
func NeedPortal(src string, deps source.Deps) error {
	if deps.Portal == nil {
		return fmt.Errorf("%s: needs the portal service API: configure the portal session (sccauth and XSRF-TOKEN cookies) or disable this source", src)
	}
	return nil
}

// NeedPublic is the error a public-API source returns when built without
// the public API client.
func NeedPublic(src string, deps source.Deps) error {
	if deps.API == nil {
		return fmt.Errorf("%s: needs the public Defender API: configure an app registration (tenant id, client id, client secret) or disable this source", src)
	}
	return nil
}

// ErrRepeatedLink reports a continuation link that was already followed.
var ErrRepeatedLink = errors.New("the API returned a continuation link it had already returned (paging loop)")
