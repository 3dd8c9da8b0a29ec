// Package all registers every output; import it for its side effect.
package all

import (
	_ "github.com/defenderharvester/defenderharvester/internal/sink/file"     // registers "files"
	_ "github.com/defenderharvester/defenderharvester/internal/sink/sentinel" // registers "sentinel"
	_ "github.com/defenderharvester/defenderharvester/internal/sink/splunk"   // registers "splunk"
	_ "github.com/defenderharvester/defenderharvester/internal/sink/stdout"   // registers "stdout"
)
