package timeline

// Choosing the devices whose timelines are harvested, beyond a list of
// device ids or [all]: by DNS name (machine_names), by machine group
// (machine_groups) and by recent alerts (alerted_within). The selectors
// combine as a union, deduplicated, capped by max_machines.

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/url"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/defenderharvester/defenderharvester/internal/mde"
	"github.com/defenderharvester/defenderharvester/internal/source/srcutil"
)

const (
	// AlertsPath is the portal's alert queue (POST, body with order,
	// pageNumber, pageSize, daysAgo; XDRInternals Get-XdrAlert).
	AlertsPath = "/apiproxy/mtp/alertsApiService/alerts"
	// maxAlertPages stops an alert list that never ends.
	maxAlertPages = 2000
	// maxAlertedWithin is the longest alerted_within: the alert queue's
	// daysAgo filter is used up to 180 days.
	maxAlertedWithin = 180 * 24 * time.Hour
	// defaultAlertPageSize is alerts per page asked for (the service may
	// serve fewer: the pager takes a short first page as its clamp).
	defaultAlertPageSize = 100
)

var dnsNameRe = regexp.MustCompile(`^[A-Za-z0-9_]([A-Za-z0-9_.-]{0,252})$`)

// Keys the alert decoder reads. The alert's own fields are XDRInternals'
// (alertId, …, impactedEntities); where its devices sit is not public,
// so several spellings and places are read.
var (
	alertIDKeys = []string{"alertId", "AlertId", "id", "Id"}
	// alertTimeKeys: the alert counts as recent when its newest present
	// time is.
	alertTimeKeys = []string{
		"lastEventTime", "LastEventTime", "endTimeUtc", "EndTimeUtc", "lastUpdated", "LastUpdated",
		"lastUpdatedTime", "LastUpdatedTime", "lastUpdateTime", "timeGenerated", "TimeGenerated",
		"creationTime", "CreationTime", "firstEventTime", "FirstEventTime", "startTimeUtc", "StartTimeUtc",
	}
	machineIDKeys  = []string{"senseMachineId", "SenseMachineId", "machineId", "MachineId", "deviceId", "DeviceId"}
	machineDNSKeys = []string{"computerDnsName", "ComputerDnsName", "deviceDnsName", "DeviceDnsName"}
	entityKeys     = []string{"impactedEntities", "ImpactedEntities", "entities", "Entities"}
	entityListKeys = []string{"machines", "Machines", "devices", "Devices"}
	groupNameKeys  = []string{"RbacGroupName", "rbacGroupName", "MachineGroup", "machineGroup", "MachineGroupName", "machineGroupName", "GroupName"}
	groupIDKeys    = []string{"RbacGroupId", "rbacGroupId", "MachineGroupId", "machineGroupId"}
)

// selects reports whether any selector beyond machines is set.
func (c *Config) selects() bool {
	return len(c.MachineNames) > 0 || len(c.MachineGroups) > 0 || c.AlertedWithin > 0
}

// checkSelectors validates machine_names, machine_groups, alerted_within
// and alert_page_size; all is whether machines is [all].
func (c *Config) checkSelectors(all bool) error {
	if all && c.selects() {
		return errors.New("machines: [all] already selects every device: remove machine_names, machine_groups and alerted_within, or list device ids instead of all")
	}
	seen := map[string]bool{}
	for _, n := range c.MachineNames {
		n = strings.TrimSpace(n)
		switch {
		case n == "":
			return errors.New("machine_names has an empty entry")
		case strings.EqualFold(n, "all"):
			return errors.New(`machine_names: "all" is not a name; use machines: [all] for every device`)
		case !dnsNameRe.MatchString(n):
			return fmt.Errorf("machine_names entry %q is not a DNS name (letters, digits, '-', '_' and '.', at most 253 characters)", n)
		case seen[strings.ToLower(n)]:
			return fmt.Errorf("machine_names lists %q twice", n)
		}
		seen[strings.ToLower(n)] = true
	}
	seen = map[string]bool{}
	for _, g := range c.MachineGroups {
		g = strings.TrimSpace(g)
		switch {
		case g == "":
			return errors.New("machine_groups has an empty entry")
		case len(g) > 256:
			return errors.New("machine_groups has an entry longer than 256 characters")
		case seen[strings.ToLower(g)]:
			return fmt.Errorf("machine_groups lists %q twice", g)
		}
		seen[strings.ToLower(g)] = true
	}
	if w := c.AlertedWithin.D(); w < 0 || (w > 0 && w < time.Minute) || w > maxAlertedWithin {
		return fmt.Errorf("alerted_within %s is out of range: use a duration from 1m to 180d such as 24h (leave it out to select no devices by alerts)", c.AlertedWithin)
	}
	return srcutil.CheckInt("alert_page_size", c.AlertPageSize, 1, 1000)
}

// Device is one entry of the device list.
type Device struct {
	ID      string
	DNSName string
	Group   string // machine group name ("" when the list has none)
	GroupID string
}

// DecodeDevices reads one page of the device list (any list envelope)
// with each device's id, DNS name and machine group, and the total the
// page reported (-1: none).
func DecodeDevices(body []byte) ([]Device, int64, error) {
	const what = Name + " device list"
	l, err := srcutil.ReadList(what, body, srcutil.ListShape{Record: "device"})
	if err != nil {
		return nil, 0, err
	}
	out := make([]Device, 0, len(l.Records))
	for i, raw := range l.Records {
		f, err := srcutil.Fields(what, raw)
		if err != nil {
			return nil, 0, fmt.Errorf("device %d: %w", i, err)
		}
		id := srcutil.OptText(f, "SenseMachineId")
		if id == "" {
			if id, err = srcutil.Text(what, f, "SenseMachineId", "MachineId", "machineId", "id"); err != nil {
				return nil, 0, fmt.Errorf("device %d: %w", i, err)
			}
		}
		if !machineIDRe.MatchString(id) {
			return nil, 0, fmt.Errorf("%s: device %d has an id that is not a device id", what, i)
		}
		d := Device{ID: id}
		if d.DNSName, err = optString(what, i, f, machineDNSKeys); err != nil {
			return nil, 0, err
		}
		if d.Group, err = optString(what, i, f, groupNameKeys); err != nil {
			return nil, 0, err
		}
		d.GroupID = srcutil.OptText(f, groupIDKeys...)
		out = append(out, d)
	}
	return out, l.Total, nil
}

// optString reads the first present of keys as a string: missing or null
// is "", another type is an error naming the key and its type.
func optString(what string, i int, f map[string]json.RawMessage, keys []string) (string, error) {
	for _, k := range keys {
		v, ok := f[k]
		if !ok {
			continue
		}
		switch t := srcutil.JSONType(v); t {
		case "null":
			return "", nil
		case "string":
			var s string
			if err := json.Unmarshal(v, &s); err != nil {
				return "", shapeErrf("%s: record %d field %s is not a valid JSON string", what, i, k)
			}
			return s, nil
		default:
			return "", shapeErrf("%s: record %d field %s is a JSON %s, not a string", what, i, k, t)
		}
	}
	return "", nil
}

// listDevices pages the whole device list (not capped: names and groups
// are matched against all of it).
func (s *src) listDevices(ctx context.Context) ([]Device, error) {
	var out []Device
	err := s.eachDevice(ctx, func(d Device) bool {
		out = append(out, d)
		return true
	})
	return out, err
}

// eachDevice pages the device list with the shared pager and calls fn
// once per device (repeats across pages dropped) until fn returns false.
// The list reports no total and the service may clamp the page size
// below machine_page_size, so a short first page is taken as the clamp,
// not as the end (srcutil.Pager).
func (s *src) eachDevice(ctx context.Context, fn func(Device) bool) error {
	pg := srcutil.NewPager(Name+" device list", s.cfg.MachinePageSize, maxMachinePages)
	seen := map[string]bool{}
	for {
		page, size, err := pg.Next()
		if err != nil {
			return err
		}
		body, err := s.portal.Get(ctx, MachinesPath, url.Values{
			"pageIndex": {strconv.Itoa(page)}, "pageSize": {strconv.Itoa(size)}, "lookingBackIndays": {"180"},
		})
		if err != nil {
			return fmt.Errorf("%s: listing devices, page %d: %w", Name, page, err)
		}
		got, total, err := DecodeDevices(body)
		if err != nil {
			return fmt.Errorf("page %d: %w", page, err)
		}
		ids := make([]string, len(got))
		for i, d := range got {
			ids[i] = d.ID
			if seen[d.ID] {
				continue
			}
			seen[d.ID] = true
			if !fn(d) {
				return nil
			}
		}
		more, err := pg.Add(ids, total)
		if err != nil {
			return err
		}
		if !more {
			return nil
		}
	}
}

// AlertPage is one decoded page of the alert queue.
type AlertPage struct {
	Alerts []Alert
	// Total is totalEntities (or another total member); -1 when none.
	Total int64
}

// Alert is what the selection needs of one alert.
type Alert struct {
	ID string
	// Newest is the newest of the alert's times.
	Newest time.Time
	// MachineIDs are the devices the alert names by id; DNSNames those it
	// names only by DNS name.
	MachineIDs []string
	DNSNames   []string
}

// DecodeAlerts reads one page of the alert queue: {"entities":[…],
// "totalEntities":N} (or any list envelope). Every alert needs an id and
// at least one time; its devices are read from machine id fields at its
// top level and in impactedEntities (an object with arrays of machines,
// or an array of entities). Errors name keys and JSON types, never
// values.
func DecodeAlerts(body []byte) (AlertPage, error) {
	const what = Name + " alert list"
	l, err := srcutil.ReadList(what, body, srcutil.ListShape{Keys: []string{"entities", "Entities"}, Record: "alert"})
	if err != nil {
		return AlertPage{}, err
	}
	p := AlertPage{Total: l.Total}
	for _, k := range []string{"totalEntities", "TotalEntities"} {
		v, ok := l.Object[k]
		if !ok || srcutil.JSONType(v) == "null" {
			continue
		}
		var n int64
		if srcutil.JSONType(v) != "number" || json.Unmarshal(v, &n) != nil || n < 0 {
			return AlertPage{}, shapeErrf("%s: its total %s is a JSON %s, not a non-negative integer", what, k, srcutil.JSONType(v))
		}
		p.Total = n
		break
	}
	p.Alerts = make([]Alert, 0, len(l.Records))
	for i, raw := range l.Records {
		f, err := srcutil.Fields(what, raw)
		if err != nil {
			return AlertPage{}, fmt.Errorf("alert %d: %w", i, err)
		}
		a, err := decodeAlert(what, i, f)
		if err != nil {
			return AlertPage{}, err
		}
		p.Alerts = append(p.Alerts, a)
	}
	return p, nil
}

func decodeAlert(what string, i int, f map[string]json.RawMessage) (Alert, error) {
	var a Alert
	id, err := srcutil.Text(what, f, alertIDKeys...)
	if err != nil {
		return a, shapeErrf("%s: alert %d has no usable id (%s): %s", what, i, strings.Join(alertIDKeys, ", "), srcutil.DescribeObject(f))
	}
	a.ID = id
	found := false
	for _, k := range alertTimeKeys {
		v, ok := f[k]
		if !ok || srcutil.JSONType(v) == "null" {
			continue
		}
		var s string
		if srcutil.JSONType(v) != "string" || json.Unmarshal(v, &s) != nil {
			return a, shapeErrf("%s: alert %d field %s is a JSON %s, not a time", what, i, k, srcutil.JSONType(v))
		}
		if strings.TrimSpace(s) == "" {
			continue
		}
		t, err := mde.ParseTime(s)
		if err != nil {
			return a, shapeErrf("%s: alert %d field %s is not a time", what, i, k)
		}
		if !found || t.After(a.Newest) {
			a.Newest = t
		}
		found = true
	}
	if !found {
		return a, shapeErrf("%s: alert %d has none of the time fields %s: %s", what, i, strings.Join(alertTimeKeys[:6], ", ")+"…", srcutil.DescribeObject(f))
	}
	ids, names := map[string]bool{}, map[string]bool{}
	add := func(obj map[string]json.RawMessage, where string) error {
		id, err := optString(what, i, obj, machineIDKeys)
		if err != nil {
			return fmt.Errorf("%s: %w", where, err)
		}
		if id == "" {
			// Only a DNS name: resolved through the device list.
			dns, err := optString(what, i, obj, machineDNSKeys)
			if err != nil {
				return fmt.Errorf("%s: %w", where, err)
			}
			if dns != "" && dnsNameRe.MatchString(dns) && !names[strings.ToLower(dns)] {
				names[strings.ToLower(dns)] = true
				a.DNSNames = append(a.DNSNames, dns)
			}
			return nil
		}
		if !machineIDRe.MatchString(id) {
			return shapeErrf("%s: alert %d (%s) names a device whose id is not a device id", what, i, where)
		}
		if !ids[id] {
			ids[id] = true
			a.MachineIDs = append(a.MachineIDs, id)
		}
		return nil
	}
	if err := add(f, "top level"); err != nil {
		return a, err
	}
	for _, k := range entityKeys {
		v, ok := f[k]
		if !ok {
			continue
		}
		if err := readEntities(what, i, k, v, add); err != nil {
			return a, err
		}
	}
	for _, k := range entityListKeys {
		if v, ok := f[k]; ok {
			if err := readEntities(what, i, k, v, add); err != nil {
				return a, err
			}
		}
	}
	return a, nil
}

// readEntities walks an alert's entity member: an object whose machines
// (or devices) member is an array of objects, an array of entity
// objects, or null.
func readEntities(what string, i int, key string, v json.RawMessage, add func(map[string]json.RawMessage, string) error) error {
	switch srcutil.JSONType(v) {
	case "null":
		return nil
	case "array":
		var arr []json.RawMessage
		if err := json.Unmarshal(v, &arr); err != nil {
			return shapeErrf("%s: alert %d field %s is not a valid JSON array", what, i, key)
		}
		for j, e := range arr {
			if srcutil.JSONType(e) != "object" {
				continue // users, IPs … as plain values are not devices
			}
			var obj map[string]json.RawMessage
			if err := json.Unmarshal(e, &obj); err != nil {
				return shapeErrf("%s: alert %d %s[%d] is not a valid JSON object", what, i, key, j)
			}
			if err := add(obj, fmt.Sprintf("%s[%d]", key, j)); err != nil {
				return err
			}
		}
		return nil
	case "object":
		var obj map[string]json.RawMessage
		if err := json.Unmarshal(v, &obj); err != nil {
			return shapeErrf("%s: alert %d field %s is not a valid JSON object", what, i, key)
		}
		if err := add(obj, key); err != nil {
			return err
		}
		for _, k := range entityListKeys {
			if mv, ok := obj[k]; ok {
				if t := srcutil.JSONType(mv); t != "array" && t != "null" {
					return shapeErrf("%s: alert %d field %s.%s is a JSON %s, not an array", what, i, key, k, t)
				}
				if err := readEntities(what, i, key+"."+k, mv, add); err != nil {
					return err
				}
			}
		}
		return nil
	}
	return shapeErrf("%s: alert %d field %s is a JSON %s, not an object or array", what, i, key, srcutil.JSONType(v))
}

// alertBody is the alert queue's request (XDRInternals Get-XdrAlert).
type alertBody struct {
	SortByField                string `json:"sortByField"`
	Order                      string `json:"order"`
	DaysAgo                    string `json:"daysAgo"`
	ShouldReturnAlertsLinkedBy bool   `json:"shouldReturnAlertsLinkedBy"`
	PageNumber                 int    `json:"pageNumber"`
	PageSize                   int    `json:"pageSize"`
}

// alerted pages the alert queue over the last alerted_within (the
// service filters by whole days, so the alerts are filtered again by
// their newest time) and returns the devices of the recent alerts, newest
// alert first: ids, and DNS names of devices named only by name.
func (s *src) alerted(ctx context.Context) (ids, names []string, err error) {
	within := s.cfg.AlertedWithin.D()
	cutoff := s.now().Add(-within)
	// daysAgo is whole days, and which of an alert's times the service
	// filters on is not public: one day more than alerted_within covers
	// an alert whose newest time is recent but whose filtered time is not.
	days := min(int((within+24*time.Hour-1)/(24*time.Hour))+1, int(maxAlertedWithin/(24*time.Hour)))
	pg := srcutil.NewPager(Name+" alert list", s.cfg.AlertPageSize, maxAlertPages)
	seenID, seenName := map[string]bool{}, map[string]bool{}
	recent, noDevice := 0, 0
	for {
		page, size, err := pg.Next()
		if err != nil {
			return nil, nil, err
		}
		body, err := s.portal.Post(ctx, AlertsPath, nil, alertBody{
			SortByField: "LastEventTime", Order: "desc", DaysAgo: strconv.Itoa(days),
			PageNumber: page, PageSize: size,
		})
		if err != nil {
			return nil, nil, fmt.Errorf("%s: listing alerts (alerted_within), page %d: %w", Name, page, err)
		}
		p, err := DecodeAlerts(body)
		if err != nil {
			return nil, nil, fmt.Errorf("alerted_within: page %d: %w", page, err)
		}
		keys := make([]string, len(p.Alerts))
		for i, a := range p.Alerts {
			keys[i] = a.ID
			if a.Newest.Before(cutoff) {
				continue
			}
			recent++
			if len(a.MachineIDs) == 0 && len(a.DNSNames) == 0 {
				noDevice++
			}
			for _, id := range a.MachineIDs {
				if !seenID[id] {
					seenID[id] = true
					ids = append(ids, id)
				}
			}
			for _, n := range a.DNSNames {
				if !seenName[strings.ToLower(n)] {
					seenName[strings.ToLower(n)] = true
					names = append(names, n)
				}
			}
		}
		more, err := pg.Add(keys, p.Total)
		if err != nil {
			return nil, nil, err
		}
		if !more {
			break
		}
	}
	s.log.Info("timeline: devices with recent alerts", slog.String("alerted_within", s.cfg.AlertedWithin.String()),
		slog.Int64("alerts_read", pg.Read()), slog.Int("recent_alerts", recent), slog.Int("recent_alerts_without_device", noDevice),
		slog.Int("devices", len(ids)+len(names)))
	return ids, names, nil
}

// hostPart is a DNS name's first label.
func hostPart(dns string) string {
	h, _, _ := strings.Cut(dns, ".")
	return h
}

// matchName reports whether device d is called name: the whole DNS name,
// case-insensitively, or its first label when name has no dot.
func matchName(d Device, name string) bool {
	if d.DNSName == "" {
		return false
	}
	if strings.EqualFold(d.DNSName, name) {
		return true
	}
	return !strings.Contains(name, ".") && strings.EqualFold(hostPart(d.DNSName), name)
}

// selectMachines resolves machines (ids), machine_names, machine_groups
// and alerted_within into one deduplicated list of device ids, in that
// order, capped by max_machines.
func (s *src) selectMachines(ctx context.Context) ([]string, error) {
	var out []string
	seen := map[string]bool{}
	add := func(id string) {
		if !seen[id] {
			seen[id] = true
			out = append(out, id)
		}
	}
	for _, id := range s.cfg.Machines {
		add(id)
	}
	var alertIDs, alertNames []string
	if s.cfg.AlertedWithin > 0 {
		var err error
		if alertIDs, alertNames, err = s.alerted(ctx); err != nil {
			return nil, err
		}
	}
	var devs []Device
	if len(s.cfg.MachineNames) > 0 || len(s.cfg.MachineGroups) > 0 || len(alertNames) > 0 {
		var err error
		if devs, err = s.listDevices(ctx); err != nil {
			return nil, err
		}
	}
	var unknown []string
	for _, n := range s.cfg.MachineNames {
		n = strings.TrimSpace(n)
		var hits []string
		for _, d := range devs {
			if matchName(d, n) {
				hits = append(hits, d.ID)
			}
		}
		switch {
		case len(hits) == 0:
			unknown = append(unknown, strconv.Quote(n))
		case len(hits) > 1:
			s.log.Info("timeline: a machine name matches several devices; harvesting all of them",
				slog.String("machine_name", n), slog.Int("devices", len(hits)))
		}
		for _, id := range hits {
			add(id)
		}
	}
	if len(unknown) > 0 {
		return nil, fmt.Errorf("%s: machine_names: no device in the device list is named %s (names match ComputerDnsName case-insensitively, or its first label for a name without a dot; the list holds devices seen in the last 180 days)",
			Name, strings.Join(unknown, ", "))
	}
	for _, g := range s.cfg.MachineGroups {
		g = strings.TrimSpace(g)
		n := 0
		for _, d := range devs {
			if strings.EqualFold(d.Group, g) || (d.GroupID != "" && d.GroupID == g) {
				add(d.ID)
				n++
			}
		}
		if n == 0 {
			s.log.Warn("timeline: a machine group matches no device in the device list (check its name)", slog.String("machine_group", g))
		}
	}
	for _, id := range alertIDs {
		add(id)
	}
	missing := 0
	for _, n := range alertNames {
		hit := false
		for _, d := range devs {
			if strings.EqualFold(d.DNSName, n) {
				add(d.ID)
				hit = true
			}
		}
		if !hit {
			missing++
		}
	}
	if missing > 0 {
		s.log.Warn("timeline: devices named by recent alerts are not in the device list; their timelines are not harvested", slog.Int("devices", missing))
	}
	if len(out) > s.cfg.MaxMachines {
		s.log.Warn("timeline: the selection holds more devices than max_machines; the rest are not harvested",
			slog.Int("selected", len(out)), slog.Int("max_machines", s.cfg.MaxMachines))
		out = out[:s.cfg.MaxMachines]
	}
	if len(out) == 0 {
		s.log.Info("timeline: no device selected this run (no matching devices or recent alerts)")
	}
	return out, nil
}

// shapeError is an answer-shape error (errors.Is srcutil.ErrShape).
type shapeError struct{ msg string }

func (e *shapeError) Error() string        { return e.msg }
func (e *shapeError) Is(target error) bool { return target == srcutil.ErrShape }

func shapeErrf(format string, a ...any) error {
	return &shapeError{fmt.Sprintf(format, a...)}
}
