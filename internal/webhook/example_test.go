package webhook_test

import (
	"context"
	"fmt"
	"log/slog"

	"github.com/defenderharvester/defenderharvester/internal/webhook"
)

// The harvester's side: build, start, consume, shut down.
func Example() {
	host, _ := webhook.HostForCloud("gcc")
	l, err := webhook.New(webhook.Options{
		AuthID:   "read-from-a-file-or-env", // never a literal in real code
		TenantID: "4a1b5c2d-1111-4222-8333-123456789abc",
		Host:     host,
		Listen:   "127.0.0.1:0",
		Logger:   slog.Default(),
	})
	if err != nil {
		fmt.Println(err)
		return
	}
	if err := l.Start(context.Background()); err != nil {
		fmt.Println(err)
		return
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		for n := range l.Notifications() {
			// fetch n.ContentURI with the Management API client, then
			// hand the records to the pipeline
			_ = n
		}
	}()
	_ = l.Shutdown(context.Background())
	<-done
	fmt.Println(host)
	// Output: manage-gcc.office.com
}
