package source

import "github.com/defenderharvester/defenderharvester/internal/config"

// Duration is the config's one duration type ("15m", "72h", "7d"; never
// negative), so sources' settings read exactly like the rest of the
// config. See config.Duration.
type Duration = config.Duration
