package sim

import (
	"fmt"
	"math/rand/v2"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"
)

// FaultKind is what goes wrong.
type FaultKind string

// Fault kinds.
const (
	Fault429      FaultKind = "429"      // 429 in the service's envelope, with Retry-After
	Fault500      FaultKind = "500"      // 500 in the service's envelope
	Fault503      FaultKind = "503"      // 503 (with Retry-After when set)
	FaultReset    FaultKind = "reset"    // the connection is reset before any response
	FaultTruncate FaultKind = "truncate" // half the real body under the full Content-Length, then close
	FaultLogin    FaultKind = "login"    // 200 with an HTML sign-in page instead of JSON
	FaultSlow     FaultKind = "slow"     // the response is delayed, then served normally
	FaultChaos    FaultKind = "chaos"    // one of 429, 500, 503 or reset, picked at random (seeded)
)

var faultKinds = []FaultKind{Fault429, Fault500, Fault503, FaultReset, FaultTruncate, FaultLogin, FaultSlow, FaultChaos}

// faultFamilies are the families a fault can target; "*" is all.
var faultFamilies = []string{FamilyPortal, FamilyPublic, FamilyEntra, FamilyLegacy, FamilyTimeline, FamilyManage, FamilyGraph, ReceiverSentinel, ReceiverSplunk, "*"}

// FaultRate is one probabilistic fault: each request of Family suffers Kind
// with probability Rate.
type FaultRate struct {
	Family     string
	Kind       FaultKind
	Rate       float64       // 0..1
	RetryAfter time.Duration // for 429/503 (429 default 1s)
	Delay      time.Duration // for slow
}

// Faults is the probabilistic fault configuration (seeded by Options.Seed).
type Faults struct {
	Rates []FaultRate
}

// FaultRule is a deterministic, scripted fault: the next Count requests of
// Family (that reach a route whose sub-family or family matches) suffer
// Kind — after the first After matching requests went through, so a test
// can start an outage in the middle of a run.
type FaultRule struct {
	Family     string
	Kind       FaultKind
	Count      int
	After      int
	RetryAfter time.Duration
	Delay      time.Duration
}

func validFamily(f string) bool {
	for _, x := range faultFamilies {
		if f == x {
			return true
		}
	}
	return false
}

func validKind(k FaultKind) bool {
	for _, x := range faultKinds {
		if k == x {
			return true
		}
	}
	return false
}

func (f Faults) validate() error {
	for _, r := range f.Rates {
		switch {
		case !validFamily(r.Family):
			return fmt.Errorf("fault family %q is unknown: use one of %s", r.Family, strings.Join(faultFamilies, ", "))
		case !validKind(r.Kind):
			return fmt.Errorf("fault kind %q is unknown: use one of %s", r.Kind, kindList())
		case r.Rate < 0 || r.Rate > 1:
			return fmt.Errorf("fault %s:%s rate %v is out of range: use a probability between 0 and 1", r.Family, r.Kind, r.Rate)
		case r.RetryAfter < 0 || r.Delay < 0:
			return fmt.Errorf("fault %s:%s has a negative duration", r.Family, r.Kind)
		}
	}
	return nil
}

func kindList() string {
	var s []string
	for _, k := range faultKinds {
		s = append(s, string(k))
	}
	return strings.Join(s, ", ")
}

// String renders the spec ParseFaults reads.
func (f Faults) String() string {
	var parts []string
	for _, r := range f.Rates {
		v := strconv.FormatFloat(r.Rate, 'g', -1, 64)
		switch {
		case r.Kind == FaultSlow && r.Rate == 1:
			v = r.Delay.String()
		case r.Kind == FaultSlow:
			v += "@" + r.Delay.String()
		case r.RetryAfter > 0:
			v += "@" + r.RetryAfter.String()
		}
		parts = append(parts, r.Family+":"+string(r.Kind)+"="+v)
	}
	return strings.Join(parts, ",")
}

// ParseFaults reads a flag-friendly spec: comma-separated
// family:kind=value items, e.g.
//
//	portal:429=0.1,public:500=0.05,timeline:slow=2s
//
// value is a probability (0..1), optionally "@duration" (Retry-After for
// 429/503, the delay for slow); for slow a bare duration means "always".
func ParseFaults(spec string) (Faults, error) {
	var f Faults
	for _, item := range strings.Split(spec, ",") {
		item = strings.TrimSpace(item)
		if item == "" {
			continue
		}
		lhs, val, ok := strings.Cut(item, "=")
		fam, kind, ok2 := strings.Cut(lhs, ":")
		if !ok || !ok2 {
			return Faults{}, fmt.Errorf("fault %q: write family:kind=value, e.g. portal:429=0.1", item)
		}
		fam, kind, val = strings.ToLower(strings.TrimSpace(fam)), strings.ToLower(strings.TrimSpace(kind)), strings.TrimSpace(val)
		r := FaultRate{Family: fam, Kind: FaultKind(kind)}
		if !validFamily(fam) {
			return Faults{}, fmt.Errorf("fault %q: family %q is unknown: use one of %s", item, fam, strings.Join(faultFamilies, ", "))
		}
		if !validKind(r.Kind) {
			return Faults{}, fmt.Errorf("fault %q: kind %q is unknown: use one of %s", item, kind, kindList())
		}
		rate, dur, hasDur := strings.Cut(val, "@")
		if r.Kind == FaultSlow && !hasDur {
			if _, err := time.ParseDuration(rate); err == nil {
				rate, dur, hasDur = "1", rate, true
			}
		}
		p, err := strconv.ParseFloat(rate, 64)
		if err != nil || p < 0 || p > 1 {
			return Faults{}, fmt.Errorf("fault %q: %q is not a probability between 0 and 1", item, rate)
		}
		r.Rate = p
		if hasDur {
			d, err := time.ParseDuration(dur)
			if err != nil || d < 0 {
				return Faults{}, fmt.Errorf("fault %q: %q is not a duration such as 2s or 500ms", item, dur)
			}
			if r.Kind == FaultSlow {
				r.Delay = d
			} else {
				r.RetryAfter = d
			}
		}
		if r.Kind == FaultSlow && r.Delay == 0 {
			return Faults{}, fmt.Errorf("fault %q: slow needs a delay, e.g. timeline:slow=2s or timeline:slow=0.2@2s", item)
		}
		f.Rates = append(f.Rates, r)
	}
	return f, nil
}

// faultEngine decides, per request, which fault applies.
type faultEngine struct {
	mu    sync.Mutex
	rng   *rand.Rand
	rates []FaultRate
	rules []*FaultRule
	fired map[FaultKind]int
}

func newFaultEngine(seed int64, f Faults) *faultEngine {
	return &faultEngine{rng: rngFor(seed, 0xfa017), rates: append([]FaultRate(nil), f.Rates...)}
}

// Inject queues a deterministic fault rule; rules apply in the order given,
// before the probabilistic rates. Invalid rules are ignored with no effect
// beyond a logged warning.
func (t *Tenant) Inject(f FaultRule) {
	if !validFamily(f.Family) || !validKind(f.Kind) || f.Count <= 0 {
		t.log.Warn("ignoring invalid fault rule", "family", f.Family, "kind", string(f.Kind), "count", f.Count)
		return
	}
	t.faults.mu.Lock()
	defer t.faults.mu.Unlock()
	r := f
	t.faults.rules = append(t.faults.rules, &r)
}

// ClearInjected drops every scripted fault still pending (the outage a
// test started is over).
func (t *Tenant) ClearInjected() {
	t.faults.mu.Lock()
	defer t.faults.mu.Unlock()
	t.faults.rules = nil
}

type faultDecision struct {
	kind       FaultKind // "" when only delayed
	pick       int       // for chaos: which failure
	retryAfter time.Duration
	delay      time.Duration
}

func famMatch(want, family, sub string) bool {
	return want == "*" || want == family || (sub != "" && want == sub)
}

func (e *faultEngine) decide(family, sub string) *faultDecision {
	e.mu.Lock()
	defer e.mu.Unlock()
	d := e.pick(family, sub)
	if d != nil {
		k := d.kind
		if k == "" {
			k = FaultSlow
		}
		e.countLocked(k)
	}
	return d
}

// count records a fault served outside the rules and rates (the
// concurrency throttle), so FaultsFired shows it.
func (e *faultEngine) count(k FaultKind) {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.countLocked(k)
}

func (e *faultEngine) countLocked(k FaultKind) {
	if e.fired == nil {
		e.fired = map[FaultKind]int{}
	}
	e.fired[k]++
}

// FaultsFired counts the faults served so far, by kind (a delayed
// response counts as slow), so a test can prove its faults happened.
func (t *Tenant) FaultsFired() map[FaultKind]int {
	t.faults.mu.Lock()
	defer t.faults.mu.Unlock()
	out := map[FaultKind]int{}
	for k, n := range t.faults.fired {
		out[k] = n
	}
	return out
}

func (e *faultEngine) pick(family, sub string) *faultDecision {
	var d faultDecision
	for i, r := range e.rules {
		if r.Count <= 0 || !famMatch(r.Family, family, sub) {
			continue
		}
		if r.After > 0 {
			r.After--
			continue
		}
		r.Count--
		if r.Count == 0 {
			e.rules = append(e.rules[:i:i], e.rules[i+1:]...)
		}
		if r.Kind == FaultSlow {
			d.delay = r.Delay
			return &d
		}
		d.kind, d.retryAfter, d.delay = r.Kind, r.RetryAfter, r.Delay
		if d.kind == FaultChaos {
			d.pick = e.rng.IntN(4)
		}
		if d.kind == Fault429 && d.retryAfter <= 0 {
			d.retryAfter = time.Second
		}
		return &d
	}
	hit := false
	for _, r := range e.rates {
		if !famMatch(r.Family, family, sub) || r.Rate <= 0 {
			continue
		}
		if e.rng.Float64() >= r.Rate {
			continue
		}
		hit = true
		if r.Kind == FaultSlow {
			d.delay += r.Delay
			continue
		}
		if d.kind == "" {
			d.kind, d.retryAfter = r.Kind, r.RetryAfter
			if d.kind == FaultChaos {
				d.pick = e.rng.IntN(4)
			}
			if d.kind == Fault429 && d.retryAfter <= 0 {
				d.retryAfter = time.Second
			}
		}
	}
	if !hit {
		return nil
	}
	return &d
}

// pendingRules is for tests and diagnostics: the remaining scripted faults.
func (e *faultEngine) pendingRules() []FaultRule {
	e.mu.Lock()
	defer e.mu.Unlock()
	var out []FaultRule
	for _, r := range e.rules {
		out = append(out, *r)
	}
	sort.SliceStable(out, func(i, j int) bool { return out[i].Family < out[j].Family })
	return out
}
