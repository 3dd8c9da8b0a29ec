package splunk

import (
	"errors"
	"fmt"
	"net/url"
	"strings"
	"time"

	"github.com/defenderharvester/defenderharvester/internal/config"
	"github.com/defenderharvester/defenderharvester/internal/delivery"
	"github.com/defenderharvester/defenderharvester/internal/sink"
)

// Config are the Splunk output's settings. The token is never part of
// it: it comes from token_file (mode 0600) or DH_SPLUNK_TOKEN.
type Config struct {
	// URL is the HEC base, e.g. https://splunk.example.com:8088; the
	// event, ack and health paths are appended.
	URL       string `yaml:"url"`
	TokenFile string `yaml:"token_file"`
	// Index is empty for the token's default index.
	Index string `yaml:"index"`
	// Host defaults to the machine's host name.
	Host   string `yaml:"host"`
	Source string `yaml:"source"`
	// Sourcetype applies to every table; empty means the table name.
	// Sourcetypes overrides it per table.
	Sourcetype  string            `yaml:"sourcetype"`
	Sourcetypes map[string]string `yaml:"sourcetypes"`
	Gzip        bool              `yaml:"gzip"`
	Ack         AckConfig         `yaml:"ack"`
	// CAFile is a PEM bundle trusted in addition to the system roots.
	CAFile             string `yaml:"ca_file"`
	InsecureSkipVerify bool   `yaml:"insecure_skip_verify"`
	// Timeout bounds one HTTP call (event post, ack query, health check)
	// and the wait for response headers.
	Timeout  config.Duration `yaml:"timeout"`
	Delivery delivery.Config `yaml:"delivery"`
	// DeadLetterDir keeps the events HEC refuses one by one for their own
	// content; default <data dir>/deadletter.
	DeadLetterDir string `yaml:"dead_letter_dir"`
}

// AckConfig controls indexer acknowledgement (the token must have it on).
type AckConfig struct {
	Enabled      bool            `yaml:"enabled"`
	PollInterval config.Duration `yaml:"poll_interval"`
	// Timeout is how long a request may stay unacknowledged before it is
	// sent again (duplicates are then possible).
	Timeout config.Duration `yaml:"timeout"`
}

// DefaultConfig returns the settings used when the config file says nothing.
func DefaultConfig() *Config {
	return &Config{
		Source:  DefaultSource,
		Gzip:    true,
		Timeout: config.Duration(DefaultTimeout),
		Ack: AckConfig{
			PollInterval: config.Duration(DefaultPollInterval),
			Timeout:      config.Duration(DefaultAckTimeout),
		},
		Delivery: delivery.Config{MaxBytes: delivery.DefaultMaxBytes},
	}
}

// durations returns timeout, ack.poll_interval and ack.timeout with the
// defaults for zero values.
func (c *Config) durations() (timeout, poll, ackTimeout time.Duration) {
	timeout, poll, ackTimeout = time.Duration(c.Timeout), time.Duration(c.Ack.PollInterval), time.Duration(c.Ack.Timeout)
	if timeout == 0 {
		timeout = DefaultTimeout
	}
	if poll == 0 {
		poll = DefaultPollInterval
	}
	if ackTimeout == 0 {
		ackTimeout = DefaultAckTimeout
	}
	return timeout, poll, ackTimeout
}

// attemptTimeout is delivery.attempt_timeout, or its default: one attempt
// is a post and, with ack, the wait for the indexers, so the default
// covers ack.timeout plus a poll and both calls.
func (c *Config) attemptTimeout() time.Duration {
	if c.Delivery.AttemptTimeout != 0 {
		return c.Delivery.AttemptTimeout
	}
	timeout, poll, ackTimeout := c.durations()
	if c.Ack.Enabled {
		return 2*timeout + ackTimeout + poll
	}
	return max(delivery.DefaultAttemptTimeout, timeout)
}

// Validate checks every value that needs neither the network nor the
// token, so a bad one is a config error before any work. Messages name
// the key without the outputs.splunk. prefix (the caller adds it).
func (c *Config) Validate() error {
	var errs []error
	add := func(format string, a ...any) { errs = append(errs, fmt.Errorf(format, a...)) }
	if _, err := parseBase(c.URL); err != nil {
		errs = append(errs, err)
	}
	for _, d := range []struct {
		key string
		v   config.Duration
	}{{"timeout", c.Timeout}, {"ack.poll_interval", c.Ack.PollInterval}, {"ack.timeout", c.Ack.Timeout}} {
		if d.v < 0 {
			add("%s %s is negative: use a duration such as 30s, or leave it out for the default", d.key, time.Duration(d.v))
		}
	}
	_, poll, ackTimeout := c.durations()
	if c.Ack.Enabled && ackTimeout < poll {
		add("ack.timeout %s is shorter than ack.poll_interval %s: no acknowledgement could ever arrive in time; raise ack.timeout", ackTimeout, poll)
	}
	if at := c.Delivery.AttemptTimeout; c.Ack.Enabled && at > 0 && at < ackTimeout+poll {
		add("delivery.attempt_timeout %s is shorter than ack.timeout %s plus ack.poll_interval %s: an attempt would be cut before its acknowledgement can arrive; raise it or leave it out (the default fits ack.timeout)", at, ackTimeout, poll)
	}
	for t, st := range c.Sourcetypes {
		if strings.TrimSpace(st) == "" {
			add("sourcetypes.%s is empty; remove it to use the default or name a sourcetype", t)
		}
	}
	if err := c.Delivery.Validate(); err != nil {
		errs = append(errs, sink.PrefixKeys("delivery.", err))
	}
	return errors.Join(errs...)
}

// DeadLetterDirectory is dead_letter_dir ("": <data dir>/deadletter),
// for the state tools (sink.DeadLetterDirer).
func (c *Config) DeadLetterDirectory() string { return c.DeadLetterDir }

// ResolvePaths implements config.PathResolver: token_file, ca_file and
// dead_letter_dir are relative to the config file's folder.
func (c *Config) ResolvePaths(resolve func(string) string) {
	for _, p := range []*string{&c.TokenFile, &c.CAFile, &c.DeadLetterDir} {
		if *p != "" {
			*p = resolve(*p)
		}
	}
}

// parseBase checks the url setting and returns it without the collector
// path a user may have pasted.
func parseBase(raw string) (string, error) {
	raw = strings.TrimSpace(raw)
	if raw == "" {
		return "", errors.New("url is empty: set it to the HEC address, e.g. https://splunk.example.com:8088")
	}
	u, err := url.Parse(raw)
	if err != nil {
		return "", fmt.Errorf("url %q is not a URL: %w", raw, err)
	}
	switch {
	case u.Scheme != "https":
		return "", fmt.Errorf("url %q must start with https:// (the HEC token must not travel in clear text); enable SSL on the HEC input", raw)
	case u.Host == "":
		return "", fmt.Errorf("url %q has no host; use e.g. https://splunk.example.com:8088", raw)
	case u.User != nil:
		return "", errors.New("url must not contain a user or password; put the HEC token in token_file or DH_SPLUNK_TOKEN")
	case u.RawQuery != "" || u.Fragment != "":
		return "", errors.New("url must not contain a query or fragment (a ?token= would leak the HEC token); use the base address only")
	}
	p := strings.TrimRight(u.Path, "/")
	for _, suffix := range []string{"/services/collector/event/1.0", eventPath, "/services/collector"} {
		if strings.HasSuffix(p, suffix) {
			p = strings.TrimSuffix(p, suffix)
			break
		}
	}
	return u.Scheme + "://" + u.Host + p, nil
}
