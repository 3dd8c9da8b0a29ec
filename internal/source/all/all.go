// Package all registers every source; the CLI imports it for its side
// effect.
package all

import (
	_ "github.com/defenderharvester/defenderharvester/internal/source/actioncenter"
	_ "github.com/defenderharvester/defenderharvester/internal/source/alertservicesettings"
	_ "github.com/defenderharvester/defenderharvester/internal/source/auditlog"
	_ "github.com/defenderharvester/defenderharvester/internal/source/connectedapps"
	_ "github.com/defenderharvester/defenderharvester/internal/source/customdetections"
	_ "github.com/defenderharvester/defenderharvester/internal/source/dataexportsettings"
	_ "github.com/defenderharvester/defenderharvester/internal/source/detectionrules"
	_ "github.com/defenderharvester/defenderharvester/internal/source/executedqueries"
	_ "github.com/defenderharvester/defenderharvester/internal/source/featuresettings"
	_ "github.com/defenderharvester/defenderharvester/internal/source/libraryfiles"
	_ "github.com/defenderharvester/defenderharvester/internal/source/machineactions"
	_ "github.com/defenderharvester/defenderharvester/internal/source/machinegroups"
	_ "github.com/defenderharvester/defenderharvester/internal/source/schema"
	_ "github.com/defenderharvester/defenderharvester/internal/source/suppressionrules"
	_ "github.com/defenderharvester/defenderharvester/internal/source/timeline"
)
