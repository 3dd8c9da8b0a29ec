// Package machineactions harvests machine actions from the public Defender
// API — isolation, scans, Live Response, quarantine — mostly those started
// through the API (event source, table MdeMachineActionsApi).
package machineactions

import (
	"context"
	"encoding/json"
	"fmt"
	"net/url"
	"strconv"
	"time"

	"github.com/defenderharvester/defenderharvester/internal/mde"
	"github.com/defenderharvester/defenderharvester/internal/record"
	"github.com/defenderharvester/defenderharvester/internal/source"
	"github.com/defenderharvester/defenderharvester/internal/source/srcutil"
)

const (
	// Name is the source's config key.
	Name = "machineactions"
	// Table is where its records land.
	Table = "MdeMachineActionsApi"
	// Path is the public API endpoint.
	Path        = "/api/machineactions"
	maxPageSize = 10000
	maxPages    = 10000
	odataTime   = "2006-01-02T15:04:05.0000000Z"
)

// Config are the source's settings.
type Config struct {
	PageSize int `yaml:"page_size"`
	// Revisit is re-read before the window start so status changes of
	// recent actions arrive (filtering is only possible on creation time).
	Revisit           source.Duration `yaml:"revisit"`
	srcutil.Windowing `yaml:",inline"`
}

// NewConfig returns the defaults.
func NewConfig() *Config {
	return &Config{PageSize: 1000, Revisit: source.Duration(72 * time.Hour), Windowing: srcutil.Windowing{
		Overlap: source.Duration(15 * time.Minute), MaxWindow: source.Duration(30 * 24 * time.Hour),
	}}
}

// Page is one decoded OData page.
type Page struct {
	Items    []source.Item
	Rows     int // records on the page, before the local time filter
	NextLink string
}

// DecodePage reads {"value":[…],"@odata.nextLink":…}. Every action needs
// id and lastUpdateDateTimeUtc (or the documented typo lastUpdateTimeUtc).
func DecodePage(body []byte) (Page, error) {
	recs, err := srcutil.Items(Name, body, srcutil.Envelope{Keys: []string{"value"}})
	if err != nil {
		return Page{}, err
	}
	items, err := fields.Items(Name, recs)
	if err != nil {
		return Page{}, err
	}
	next, err := srcutil.NextLink(Name, body)
	if err != nil {
		return Page{}, err
	}
	return Page{Items: items, Rows: len(recs), NextLink: next}, nil
}

// fields: a status change is a new record.
var fields = srcutil.EventFields{
	ID: []string{"id"}, Time: []string{"lastUpdateDateTimeUtc", "lastUpdateTimeUtc"},
	StableID: func(id, ts string, f map[string]json.RawMessage) string {
		return record.StableID(Name, id, ts, srcutil.OptText(f, "status"))
	},
}

type src struct {
	srcutil.Meta
	api mde.PublicAPI
	cfg Config
}

func (s *src) Windowing() source.Windowing { return s.cfg.Rules() }

// Fetch lists actions created in [From−Revisit, To) and emits those whose
// last update lies in [From, To).
func (s *src) Fetch(ctx context.Context, w source.Window, emit source.Emit) error {
	from := w.From.Add(-s.cfg.Revisit.D())
	filter := fmt.Sprintf("creationDateTimeUtc ge %s and creationDateTimeUtc lt %s",
		from.UTC().Format(odataTime), w.To.UTC().Format(odataTime))
	size := s.cfg.PageSize
	skip := 0
	link := ""
	links := srcutil.Cursors{}
	for page := 1; page <= maxPages; page++ {
		var body []byte
		var err error
		if link != "" {
			body, err = s.api.GetLink(ctx, link)
		} else {
			body, err = s.api.Get(ctx, Path, url.Values{
				"$filter": {filter}, "$orderby": {"creationDateTimeUtc asc"},
				"$top": {strconv.Itoa(size)}, "$skip": {strconv.Itoa(skip)},
			})
		}
		if err != nil {
			return fmt.Errorf("%s page %d: %w", Name, page, err)
		}
		p, err := DecodePage(body)
		if err != nil {
			return fmt.Errorf("page %d: %w", page, err)
		}
		for _, it := range p.Items {
			if !w.Contains(it.Time) {
				continue
			}
			if err := emit(ctx, it); err != nil {
				return err
			}
		}
		switch {
		case p.NextLink != "":
			if err := links.Follow(p.NextLink); err != nil {
				return fmt.Errorf("%s: %w", Name, err)
			}
			link = p.NextLink
		case link != "" || p.Rows < size:
			// A followed nextLink chain ends without a new link; a $top page
			// ends when short.
			return nil
		default:
			skip += size
		}
	}
	return fmt.Errorf("%s: more than %d pages in one window; lower max_window", Name, maxPages)
}

func init() {
	source.Register(source.Factory{
		Name: Name, Table: Table, Kind: source.Event, API: "public", DefaultEnabled: true,
		Description: "Machine actions from the public API (isolation, scans, Live Response, quarantine)",
		NewConfig:   func() any { return NewConfig() },
		New: func(deps source.Deps, cfg any) (source.Source, error) {
			c, err := srcutil.CheckConfig[Config](Name, cfg)
			if err != nil {
				return nil, err
			}
			if err := srcutil.IntRange(Name, "page_size", c.PageSize, 1, maxPageSize); err != nil {
				return nil, err
			}
			if err := srcutil.NeedPublic(Name, deps); err != nil {
				return nil, err
			}
			return &src{Meta: srcutil.NewMeta(Name, Table, source.Event), api: deps.API, cfg: *c}, nil
		},
	})
}
