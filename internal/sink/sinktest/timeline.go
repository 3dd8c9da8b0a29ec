package sinktest

import (
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"strings"
	"time"

	"github.com/defenderharvester/defenderharvester/internal/record"
)

// TimelineRecords returns n device-timeline records shaped like the ones
// the timeline source emits (the emulator's event JSON: processes with
// command lines and SHA1s, users, machine, typed details), about 1 KB per
// output line, deterministic for a seed. Their values vary like real
// events (hashes, ids, pids, times), so gzip and JSON costs measured
// with them are realistic; payloads are marked RawValid, as the pipeline
// marks them. Event times spread over span after 2026-03-01 12:00 UTC,
// in order.
func TimelineRecords(n int, seed uint64, span time.Duration) []record.Record {
	r := rand.New(rand.NewPCG(seed, 0x7469_6d65_6c69_6e65))
	base := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	harvested := base.Add(span + time.Minute)
	machines := make([]tlMachine, 8)
	for i := range machines {
		machines[i] = tlMachine{
			ComputerDNSName: fmt.Sprintf("ws-%04d.contoso.local", r.IntN(10000)),
			MachineID:       hexStr(r, 40),
			OsPlatform:      pickS(r, []string{"Windows11", "Windows10", "WindowsServer2022"}),
		}
	}
	users := []string{"alice", "bob", "carol", "dave", "erin", "frank", "grace", "heidi"}
	out := make([]record.Record, n)
	for i := range out {
		at := base
		if n > 1 {
			at = base.Add(span * time.Duration(i) / time.Duration(n))
		}
		at = at.Add(time.Duration(r.IntN(1_000_000)) * 100) // 100 ns ticks
		m := machines[r.IntN(len(machines))]
		user := users[r.IntN(len(users))]
		j := tlJSON{
			ActionTime: at.Format("2006-01-02T15:04:05.0000000Z"), ActionTimeIsoString: at.Format("2006-01-02T15:04:05.0000000Z"),
			ActionType: pickS(r, tlKinds), AlertIds: []string{}, IsCyberData: r.IntN(4) == 0,
			InitiatingProcess: proc(r), Machine: m, ReportID: int64(r.IntN(1 << 30)), SourceProvider: "MDE",
			Tags: []string{}, User: &tlUser{UserName: user, DomainName: "CONTOSO", Sid: "S-1-5-21-" + fmt.Sprint(r.Uint32()) + "-" + fmt.Sprint(r.Uint32()) + "-" + fmt.Sprint(1000+r.IntN(9000))},
		}
		switch j.ActionType {
		case "ProcessCreated":
			j.Process = proc(r)
			j.Description = fmt.Sprintf("%s created process %s", j.InitiatingProcess.ImageFile.FileName, j.Process.ImageFile.FileName)
		case "ConnectionSuccess":
			ip := fmt.Sprintf("%d.%d.%d.%d", 1+r.IntN(223), r.IntN(256), r.IntN(256), 1+r.IntN(254))
			port := pickS(r, []int{443, 80, 445, 3389, 5985})
			j.TypedDetails = map[string]any{"RemoteIP": ip, "RemotePort": port, "LocalPort": 49152 + r.IntN(16000), "Protocol": "Tcp"}
			j.Description = fmt.Sprintf("%s established connection with %s:%d", j.InitiatingProcess.ImageFile.FileName, ip, port)
		case "FileCreated":
			f := pickS(r, []string{"report.docx", "setup.msi", "data.zip", "script.ps1", "invoice.pdf"})
			j.TypedDetails = map[string]any{"FileName": f, "FolderPath": `C:\Users\` + user + `\Downloads`, "Sha1": hexStr(r, 40), "Sha256": hexStr(r, 64), "FileSize": r.IntN(1 << 24)}
			j.Description = fmt.Sprintf("%s created file %s", j.InitiatingProcess.ImageFile.FileName, f)
		case "RegistryValueSet":
			j.TypedDetails = map[string]any{"RegistryKey": `HKEY_CURRENT_USER\Software\Microsoft\Windows\CurrentVersion\Run`, "RegistryValueName": "Updater" + hexStr(r, 4), "RegistryValueData": `C:\ProgramData\` + hexStr(r, 12) + `\updater.exe --silent`}
			j.Description = fmt.Sprintf("%s set registry value %s", j.InitiatingProcess.ImageFile.FileName, j.TypedDetails["RegistryValueName"])
		case "LogonSuccess":
			lt := pickS(r, []string{"Interactive", "RemoteInteractive", "Network", "Unlock"})
			j.TypedDetails = map[string]any{"LogonType": lt, "LogonId": r.Uint64() >> 20, "RemoteIP": fmt.Sprintf("10.%d.%d.%d", r.IntN(256), r.IntN(256), 1+r.IntN(254))}
			j.Description = fmt.Sprintf("CONTOSO\\%s logged on (%s)", user, lt)
		}
		raw, err := json.Marshal(j)
		if err != nil {
			panic(err)
		}
		out[i] = record.Record{
			Tenant: "5f1c2a3b-4d5e-6f70-8192-a3b4c5d6e7f8", Source: "timeline", Table: "MdeTimeline",
			ID:   record.StableID("timeline", m.MachineID, fmt.Sprint(j.ReportID), j.ActionTime),
			Time: at, HarvestedAt: harvested, Raw: raw, RawValid: true,
		}
	}
	return out
}

var (
	procNames = []string{"powershell.exe", "cmd.exe", "msedge.exe", "svchost.exe", "explorer.exe", "outlook.exe", "teams.exe", "python.exe", "winword.exe", "rundll32.exe"}
	tlKinds   = []string{"ProcessCreated", "ConnectionSuccess", "FileCreated", "RegistryValueSet", "LogonSuccess"}
)

type imageFile struct {
	FileName   string `json:"FileName"`
	FolderPath string `json:"FolderPath"`
}

type tlMachine struct {
	ComputerDNSName string `json:"ComputerDnsName"`
	MachineID       string `json:"MachineId"`
	OsPlatform      string `json:"OsPlatform"`
}

type procInfo struct {
	ImageFile   imageFile `json:"ImageFile"`
	CommandLine string    `json:"CommandLine"`
	ProcessID   int       `json:"ProcessId"`
	Sha1        string    `json:"Sha1"`
}

type tlUser struct {
	UserName   string `json:"UserName"`
	DomainName string `json:"DomainName"`
	Sid        string `json:"Sid"`
}

type tlJSON struct {
	ActionTime          string         `json:"ActionTime"`
	ActionTimeIsoString string         `json:"ActionTimeIsoString"`
	ActionType          string         `json:"ActionType"`
	AlertIds            []string       `json:"AlertIds"`
	Description         string         `json:"Description"`
	InitiatingProcess   *procInfo      `json:"InitiatingProcess"`
	IsCyberData         bool           `json:"IsCyberData"`
	Machine             tlMachine      `json:"Machine"`
	Process             *procInfo      `json:"Process,omitempty"`
	ReportID            int64          `json:"ReportId"`
	SourceProvider      string         `json:"SourceProvider"`
	Tags                []string       `json:"Tags"`
	TypedDetails        map[string]any `json:"TypedDetails,omitempty"`
	User                *tlUser        `json:"User"`
}

func proc(r *rand.Rand) *procInfo {
	name := pickS(r, procNames)
	return &procInfo{
		ImageFile:   imageFile{FileName: name, FolderPath: `C:\Windows\System32\` + name},
		CommandLine: name + " " + pickS(r, []string{"", "-NoProfile -ExecutionPolicy Bypass", "/c whoami /all", "--type=renderer --field-trial-handle=" + hexStr(r, 8), "-k netsvcs -p -s Schedule"}),
		ProcessID:   1000 + r.IntN(30000), Sha1: hexStr(r, 40),
	}
}

func pickS[T any](r *rand.Rand, xs []T) T { return xs[r.IntN(len(xs))] }

func hexStr(r *rand.Rand, n int) string {
	const hx = "0123456789abcdef"
	var b strings.Builder
	b.Grow(n)
	for range n {
		b.WriteByte(hx[r.IntN(16)])
	}
	return b.String()
}

// TimelineBatch is the number of ~1 KB timeline records in one pipeline
// batch (the pipeline cuts batches at 4 MiB).
const TimelineBatch = 4 << 20 / 1110
