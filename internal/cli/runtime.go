package cli

import (
	"time"

	"github.com/defenderharvester/defenderharvester/internal/config"
)

// configRunTimeout is the config's run_timeout (the overall deadline of a
// run; --timeout overrides it).
func configRunTimeout(cfg *config.Config) time.Duration { return cfg.RunTimeout.D() }

// spoolAfter is the config's spool_after.
func spoolAfter(cfg *config.Config) time.Duration { return cfg.SpoolAfter.D() }
