package cli

import (
	"time"

	"github.com/defenderharvester/defenderharvester/internal/config"
)

// configRunTimeout is the config's run_timeout.
func configRunTimeout(cfg *config.Config) time.Duration { return time.Hour }

// spoolAfter is the config's spool_after.
func spoolAfter(cfg *config.Config) time.Duration { return 0 }
