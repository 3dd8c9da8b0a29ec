package cli

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"regexp"
	"strings"

	"github.com/defenderharvester/defenderharvester/internal/tables"
)

func init() {
	register(command{name: "sentinel-setup", summary: "print an ARM template creating the Sentinel tables and data collection rule(s)", run: runSentinelSetup})
}

// DCR limits (docs/REFERENCE.md §5.5): data flows and streams per rule.
const maxStreamsPerDCR = 10

var (
	armLocationRe  = regexp.MustCompile(`^[a-z0-9]+$`)
	armWorkspaceRe = regexp.MustCompile(`(?i)^/subscriptions/[^/]+/resourceGroups/[^/]+/providers/Microsoft\.OperationalInsights/workspaces/([^/]+)$`)
	streamPrefixRe = regexp.MustCompile(`^Custom-[A-Za-z0-9_-]*$`)
)

func runSentinelSetup(_ context.Context, env *Env, args []string) int {
	fs := newFlagSet(env, "sentinel-setup", "sentinel-setup [--out FILE] [--tables LIST|all] [--stream-prefix Custom-] [--location REGION] [--workspace-resource-id ID]")
	out := fs.String("out", "", "write the template to FILE (default stdout)")
	list := fs.String("tables", "all", "comma-separated tables, or all")
	prefix := fs.String("stream-prefix", "Custom-", "DCR stream name prefix (must match the sentinel output's stream_prefix)")
	location := fs.String("location", "", "Azure region of the DCR (default: the resource group's)")
	wsID := fs.String("workspace-resource-id", "", "Log Analytics workspace resource id (default: the workspaceName parameter in the deployment's resource group)")
	if code, ok := parseFlags(fs, env, args); !ok {
		return code
	}
	tpl, dcrs, err := sentinelTemplate(*list, *prefix, *location, *wsID)
	if err != nil {
		fmt.Fprintf(env.Stderr, "defenderharvester sentinel-setup: %v\n", err)
		return exitUsage
	}
	data, err := json.MarshalIndent(tpl, "", "  ")
	if err != nil {
		fmt.Fprintf(env.Stderr, "defenderharvester sentinel-setup: %v\n", err)
		return exitFailed
	}
	data = append(data, '\n')
	var w io.Writer = env.Stdout
	dest := "out.json"
	if *out != "" {
		if err := os.WriteFile(*out, data, 0o644); err != nil {
			fmt.Fprintf(env.Stderr, "defenderharvester sentinel-setup: cannot write %s: %v\n", *out, err)
			return exitFailed
		}
		dest = *out
		w = env.Stderr
		fmt.Fprintf(w, "Wrote %s.\n", *out)
	} else {
		if _, err := env.Stdout.Write(data); err != nil {
			return exitFailed
		}
		w = env.Stderr
	}
	// The instructions go to stderr so stdout stays a valid template.
	fmt.Fprintf(w, "\nDeploy it into the workspace's resource group:\n  az deployment group create -g <resource-group> -n %s --template-file %s --parameters workspaceName=<workspace>\n", deploymentName, dest)
	if len(dcrs) > 1 {
		fmt.Fprintf(w, "\n%d tables need %d data collection rules (at most %d streams each):\n", countTables(dcrs), len(dcrs), maxStreamsPerDCR)
		for i, d := range dcrs {
			fmt.Fprintf(w, "  DCR %d (%s): %s\n", i+1, d.display, strings.Join(d.tables, ", "))
		}
	}
	fmt.Fprintln(w, "\nThen let the harvester's identity publish to each DCR (role assignments take up to 30 minutes to apply):")
	for i := range dcrs {
		fmt.Fprintf(w, "  az role assignment create --role \"Monitoring Metrics Publisher\" --assignee <app-client-id> \\\n    --scope $(az monitor data-collection rule show -g <resource-group> -n %s --query id -o tsv)\n", dcrs[i].display)
	}
	fmt.Fprintf(w, "\nFinally configure the output. Show the deployment outputs with\n  az deployment group show -g <resource-group> -n %s --query properties.outputs\n", deploymentName)
	fmt.Fprintf(w, "(or one at a time: --query properties.outputs.%s.value -o tsv), paste each output's value over its <name> below,\n", dcrs[0].idOutput())
	fmt.Fprintln(w, "and your app's ids over <tenant-id> and <app-client-id>:")
	fmt.Fprintf(w, "\n%s\n", sentinelConfigSnippet(dcrs, *prefix))
	return exitOK
}

// deploymentName is the name the printed commands give the deployment, so
// "az deployment group show" finds its outputs.
const deploymentName = "defenderharvester"

type dcrPlan struct {
	name    string // ARM name expression
	display string // for messages
	suffix  string // of its ARM output names: "", "2", …
	tables  []string
}

func (d dcrPlan) idOutput() string       { return "dcrImmutableId" + d.suffix }
func (d dcrPlan) endpointOutput() string { return "logsIngestionEndpoint" + d.suffix }
func (d dcrPlan) tablesOutput() string   { return "tables" + d.suffix }

// sentinelConfigSnippet is the outputs.sentinel section for the plan: the
// first DCR is the top-level endpoint (it takes every table no rule
// lists), each further DCR a rule with its tables.
func sentinelConfigSnippet(dcrs []dcrPlan, prefix string) string {
	var b strings.Builder
	b.WriteString("outputs:\n  sentinel:\n")
	fmt.Fprintf(&b, "    endpoint: <%s>\n    dcr_immutable_id: <%s>\n", dcrs[0].endpointOutput(), dcrs[0].idOutput())
	if len(dcrs) > 1 {
		fmt.Fprintf(&b, "    # tables not listed below go to the DCR above (output %s)\n    rules:\n", dcrs[0].tablesOutput())
		for _, d := range dcrs[1:] {
			fmt.Fprintf(&b, "      - endpoint: <%s>\n        dcr_immutable_id: <%s>\n        tables: [%s]   # output %s\n",
				d.endpointOutput(), d.idOutput(), strings.Join(d.tables, ", "), d.tablesOutput())
		}
	}
	if prefix != "Custom-" {
		fmt.Fprintf(&b, "    stream_prefix: %s\n", prefix)
	}
	b.WriteString("    auth:\n      method: client_secret\n      tenant_id: <tenant-id>\n      client_id: <app-client-id>\n")
	b.WriteString("      client_secret_file: /etc/defenderharvester/sentinel.secret   # mode 0600; or env DH_SENTINEL_CLIENT_SECRET\n")
	return b.String()
}

func countTables(ds []dcrPlan) int {
	n := 0
	for _, d := range ds {
		n += len(d.tables)
	}
	return n
}

// sentinelTemplate builds the ARM template for the chosen tables.
func sentinelTemplate(list, prefix, location, wsID string) (map[string]any, []dcrPlan, error) {
	if !streamPrefixRe.MatchString(prefix) {
		return nil, nil, fmt.Errorf("--stream-prefix %q must start with Custom- and contain only letters, digits, _ and -", prefix)
	}
	if location != "" && !armLocationRe.MatchString(location) {
		return nil, nil, fmt.Errorf("--location %q is not an Azure region name (e.g. westeurope)", location)
	}
	wsName := ""
	if wsID != "" {
		m := armWorkspaceRe.FindStringSubmatch(wsID)
		if m == nil {
			return nil, nil, fmt.Errorf("--workspace-resource-id %q is not a Log Analytics workspace id (/subscriptions/…/resourceGroups/…/providers/Microsoft.OperationalInsights/workspaces/<name>)", wsID)
		}
		wsName = m[1]
	}
	var sel []tables.Table
	if strings.TrimSpace(list) == "" || strings.EqualFold(strings.TrimSpace(list), "all") {
		sel = tables.All()
	} else {
		seen := map[string]bool{}
		for _, n := range strings.Split(list, ",") {
			n = strings.TrimSpace(n)
			if n == "" || seen[n] {
				continue
			}
			t, ok := tables.Lookup(n)
			if !ok {
				var names []string
				for _, t := range tables.All() {
					names = append(names, t.Name)
				}
				return nil, nil, fmt.Errorf("--tables: unknown table %q; known: %s", n, strings.Join(names, ", "))
			}
			seen[n] = true
			sel = append(sel, t)
		}
		if len(sel) == 0 {
			return nil, nil, fmt.Errorf("--tables is empty: name tables or use all")
		}
	}

	params := map[string]any{
		"workspaceName": param("Log Analytics workspace (in this deployment's resource group) that receives the tables", wsName),
		"workspaceResourceId": param("Resource id of that workspace", orDefault(wsID,
			"[resourceId('Microsoft.OperationalInsights/workspaces', parameters('workspaceName'))]")),
		"location": param("Region of the data collection rule(s); must be the workspace's region", orDefault(location, "[resourceGroup().location]")),
		"dcrName":  param("Name of the data collection rule (further rules get -2, -3, …)", "dcr-defenderharvester"),
	}
	if wsName == "" {
		delete(params["workspaceName"].(map[string]any), "defaultValue")
	}

	var resources []any
	var tableIDs []string
	for _, t := range sel {
		cols := make([]any, 0, len(t.Columns))
		for _, c := range t.Columns {
			typ := c.Type
			if typ == tables.DateTime {
				typ = "dateTime" // Tables API spelling
			}
			cols = append(cols, map[string]any{"name": c.Name, "type": typ, "description": c.Description})
		}
		resources = append(resources, map[string]any{
			"type":       "Microsoft.OperationalInsights/workspaces/tables",
			"apiVersion": "2022-10-01",
			"name":       fmt.Sprintf("[concat(parameters('workspaceName'), '/%s_CL')]", t.Name),
			"properties": map[string]any{
				"plan":   "Analytics",
				"schema": map[string]any{"name": t.Name + "_CL", "description": t.Description, "columns": cols},
			},
		})
		tableIDs = append(tableIDs, fmt.Sprintf("[resourceId('Microsoft.OperationalInsights/workspaces/tables', parameters('workspaceName'), '%s_CL')]", t.Name))
	}

	outputs := map[string]any{}
	var plans []dcrPlan
	for i := 0; i < len(sel); i += maxStreamsPerDCR {
		chunk := sel[i:min(i+maxStreamsPerDCR, len(sel))]
		n := i/maxStreamsPerDCR + 1
		p := dcrPlan{name: "[parameters('dcrName')]", display: "dcr-defenderharvester"}
		if n > 1 {
			p.suffix = fmt.Sprint(n)
			p.name = fmt.Sprintf("[concat(parameters('dcrName'), '-%d')]", n)
			p.display = fmt.Sprintf("dcr-defenderharvester-%d", n)
		}
		streams := map[string]any{}
		var flows []any
		var deps []string
		for j, t := range chunk {
			p.tables = append(p.tables, t.Name)
			cols := make([]any, 0, len(t.Columns))
			for _, c := range t.Columns {
				cols = append(cols, map[string]any{"name": c.InputName(), "type": c.Type})
			}
			stream := prefix + t.Name
			streams[stream] = map[string]any{"columns": cols}
			flows = append(flows, map[string]any{
				"streams":      []string{stream},
				"destinations": []string{"workspace"},
				"transformKql": t.TransformKQL(),
				"outputStream": "Custom-" + t.Name + "_CL",
			})
			deps = append(deps, tableIDs[i+j])
		}
		resources = append(resources, map[string]any{
			"type":       "Microsoft.Insights/dataCollectionRules",
			"apiVersion": "2023-03-11",
			"name":       p.name,
			"location":   "[parameters('location')]",
			"kind":       "Direct",
			"dependsOn":  deps,
			"properties": map[string]any{
				"description":        "defenderharvester: " + strings.Join(p.tables, ", "),
				"streamDeclarations": streams,
				"destinations": map[string]any{"logAnalytics": []any{map[string]any{
					"workspaceResourceId": "[parameters('workspaceResourceId')]", "name": "workspace"}}},
				"dataFlows": flows,
			},
		})
		ref := fmt.Sprintf("reference(resourceId('Microsoft.Insights/dataCollectionRules', %s), '2023-03-11')", strings.TrimSuffix(strings.TrimPrefix(p.name, "["), "]"))
		outputs[p.idOutput()] = map[string]any{"type": "string", "value": "[" + ref + ".immutableId]"}
		outputs[p.endpointOutput()] = map[string]any{"type": "string", "value": "[" + ref + ".endpoints.logsIngestion]"}
		outputs[p.tablesOutput()] = map[string]any{"type": "array", "value": p.tables}
		plans = append(plans, p)
	}
	return map[string]any{
		"$schema":        "https://schema.management.azure.com/schemas/2019-04-01/deploymentTemplate.json#",
		"contentVersion": "1.0.0.0",
		"parameters":     params,
		"resources":      resources,
		"outputs":        outputs,
	}, plans, nil
}

func param(desc, def string) map[string]any {
	p := map[string]any{"type": "string", "metadata": map[string]any{"description": desc}}
	if def != "" {
		p["defaultValue"] = def
	}
	return p
}

func orDefault(v, def string) string {
	if v != "" {
		return v
	}
	return def
}
