// Command defenderharvester harvests Microsoft Defender for Endpoint
// sensitive-action telemetry. All logic lives in internal/cli.
package main

import (
	"context"
	"os"
	"os/signal"
	"syscall"
	_ "time/tzdata" // schedules with CRON_TZ work in images without a zone database (scratch)

	"github.com/defenderharvester/defenderharvester/internal/cli"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := cli.Main(ctx, cli.OSEnv(), os.Args[1:])
	stop()
	os.Exit(code)
}
