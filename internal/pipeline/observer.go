package pipeline

import "github.com/defenderharvester/defenderharvester/internal/source"

// Observer is told what the pipeline does as it happens: the metrics of
// `serve` and the progress display of `run` are observers. Calls come from
// several goroutines at once and must return quickly; an observer never
// changes what is delivered.
type Observer interface {
	// SourceStarted: a source (or its next part) begins reading.
	SourceStarted(tenant, source string)
	// Planned: a source (or one part of it) will read chunks windows
	// covering whole. Called again for the same part with one more window
	// when a window being read is split between workers.
	Planned(tenant, source string, chunks int, whole source.Window)
	// ChunkDone: one window was read, delivered and committed; records
	// counts the new records it delivered.
	ChunkDone(tenant, source string, w source.Window, records int)
	// Written: one output took (err nil) or refused a batch of records
	// of one source; spooled batches sent again are reported too.
	Written(tenant, source, output string, records int, err error)
	// Spooled: records of one source were put in an output's spool.
	Spooled(tenant, source, output string, records int)
	// SourceDone: a source finished its run (res.Err says how).
	SourceDone(tenant string, res Result)
}

// observers fans calls out to several observers.
type observers []Observer

func (o observers) SourceStarted(tenant, src string) {
	for _, x := range o {
		x.SourceStarted(tenant, src)
	}
}

func (o observers) Planned(tenant, src string, chunks int, whole source.Window) {
	for _, x := range o {
		x.Planned(tenant, src, chunks, whole)
	}
}

func (o observers) ChunkDone(tenant, src string, w source.Window, records int) {
	for _, x := range o {
		x.ChunkDone(tenant, src, w, records)
	}
}

func (o observers) Written(tenant, src, output string, records int, err error) {
	for _, x := range o {
		x.Written(tenant, src, output, records, err)
	}
}

func (o observers) Spooled(tenant, src, output string, records int) {
	for _, x := range o {
		x.Spooled(tenant, src, output, records)
	}
}

func (o observers) SourceDone(tenant string, res Result) {
	for _, x := range o {
		x.SourceDone(tenant, res)
	}
}

// Observers combines observers into one (nil entries are skipped).
func Observers(list ...Observer) Observer {
	var out observers
	for _, o := range list {
		if o != nil {
			out = append(out, o)
		}
	}
	return out
}

// NopObserver ignores everything; embed it to implement only some calls.
type NopObserver struct{}

func (NopObserver) SourceStarted(string, string)                 {}
func (NopObserver) Planned(string, string, int, source.Window)   {}
func (NopObserver) ChunkDone(string, string, source.Window, int) {}
func (NopObserver) Written(string, string, string, int, error)   {}
func (NopObserver) Spooled(string, string, string, int)          {}
func (NopObserver) SourceDone(string, Result)                    {}
