package sim

import (
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"sort"
	"strconv"
	"strings"
	"time"
)

// ---- Office 365 Management Activity API: the generated content ----
//
// Blobs ("content") are generated per content type and hour bucket from the
// seed, like the timeline: a bucket is a handful of blob descriptors
// (cached, bounded LRU), and a blob's records are generated again whenever
// it is fetched. Nothing grows with the emulator's running time.

// Host and content types of the Office 365 Management Activity API
// (Enterprise cloud).
const (
	ManageHost             = "manage.office.com"
	AuditContentAAD        = "Audit.AzureActiveDirectory"
	AuditContentExchange   = "Audit.Exchange"
	AuditContentSharePoint = "Audit.SharePoint"
	AuditContentGeneral    = "Audit.General"
	AuditContentDLP        = "DLP.All"
	// AuditResource is the token audience; scope AuditResource + "/.default".
	AuditResource = "https://manage.office.com"
	// AuditRole is the app role every call needs.
	AuditRole = "ActivityFeed.Read"
	// DefenderWorkload is the Workload of Defender for Endpoint records.
	DefenderWorkload = "MicrosoftDefenderForEndpoint"
	// Defaults of the Audit* options.
	DefaultAuditPageCap               = 37
	DefaultAuditRecordsPerHour        = 12
	DefaultAuditQuotaPerMinute        = 2000
	MaxAuditRecordsPerHour            = 5000
	auditRetention                    = 7 * 24 * time.Hour
	auditMaxWindow                    = 24 * time.Hour
	auditStartThrottle                = 15 * time.Minute
	lblAudit                   uint64 = 0xa0d17
)

// auditCTs are the content types, in the order list answers them.
var auditCTs = []string{AuditContentAAD, AuditContentExchange, AuditContentSharePoint, AuditContentGeneral, AuditContentDLP}

// auditCodes tag a content id with its content type.
var auditCodes = []string{"aad", "exo", "spo", "gen", "dlp"}

const (
	ctAAD = iota
	ctExchange
	ctSharePoint
	ctGeneral
	ctDLP
)

// AuditContentTypes are the five content types of the API.
func AuditContentTypes() []string { return append([]string(nil), auditCTs...) }

func auditCTIndex(ct string) int {
	for i, c := range auditCTs {
		if c == ct {
			return i
		}
	}
	return -1
}

// auditBlob describes one blob of a bucket.
type auditBlob struct {
	ct      int
	hour    int64
	k       int
	id      string
	created time.Time // when the blob became available (ms resolution)
	n       int       // records (primary blobs)
	// A re-delivery publishes blob 0 of hour srcHour again: same records,
	// new content id and time.
	redelivery bool
	srcHour    int64
	// A scenario blob publishes the abuse scenario's records of one
	// ten-minute slot (slot: Unix time / 600).
	abuse bool
	slot  int64
}

type auditKey struct {
	ct   int
	hour int64
}

// auditBucket is the (cached) blobs of content type ct created in hour h.
func (t *Tenant) auditBucket(ct int, h int64) []auditBlob {
	if hourStart(h + 1).Before(t.w.dataFrom) {
		return nil
	}
	return t.auditCache.get(auditKey{ct, h}, func() []auditBlob { return t.genAuditBucket(ct, h) })
}

func (t *Tenant) genAuditBucket(ct int, h int64) []auditBlob {
	r := rngFor(t.w.seed, lblAudit, uint64(ct), uint64(h))
	per := t.opts.AuditRecordsPerHour
	if ct == ctDLP {
		per = max(1, per/4)
	}
	nb := 1 + r.IntN(3)
	total := max(nb, per/2+r.IntN(per+1))
	out := make([]auditBlob, 0, nb+1)
	for k := 0; k < nb; k++ {
		n := total / nb
		if k < total%nb {
			n++
		}
		created := hourStart(h).Add(time.Duration(r.Int64N(3600_000)) * time.Millisecond)
		out = append(out, auditBlob{ct: ct, hour: h, k: k, created: created, n: n})
	}
	// Late re-delivery: once a day Audit.General publishes an old blob again
	// two to three days later.
	phase := int64(mix(uint64(t.w.seed)^lblAudit) % 24)
	if ct == ctGeneral && ((h+phase)%24+24)%24 == 0 {
		src := h - 49 - int64(r.IntN(24))
		if !hourStart(src + 1).Before(t.w.dataFrom) {
			created := hourStart(h).Add(time.Duration(r.Int64N(3600_000)) * time.Millisecond)
			out = append(out, auditBlob{ct: ct, hour: h, k: nb, created: created, redelivery: true, srcHour: src})
		}
	}
	if t.w.abuse != nil {
		out = append(out, t.w.abuse.auditBlobs(ct, h)...)
	}
	for i := range out {
		out[i].id = auditContentID(t.w.seed, out[i].ct, h, out[i].k)
	}
	return out
}

// auditContentID is opaque to clients and contains "$" like the service's:
// <hour>$<hour>$<32 hex><type code><yyyymmddhh>$<32 hex>$<kk>.
func auditContentID(seed int64, ct int, h int64, k int) string {
	r := rngFor(seed, lblAudit, uint64(ct), uint64(h), uint64(k), 7)
	hs := strconv.FormatInt(h, 10)
	return fmt.Sprintf("%s$%s$%s%s%s$%s$%02d", hs, hs, hexN(r, 32), auditCodes[ct], hourStart(h).Format("2006010215"), hexN(r, 32), k)
}

// parseContentID finds the bucket a content id names; ok is false when it
// is not shaped like one of ours (AF20052).
func parseContentID(id string) (ct int, h int64, k int, ok bool) {
	p := strings.Split(id, "$")
	if len(p) != 5 || p[0] != p[1] || len(p[2]) != 32+3+10 || len(p[4]) != 2 {
		return 0, 0, 0, false
	}
	h, err := strconv.ParseInt(p[0], 10, 64)
	if err != nil {
		return 0, 0, 0, false
	}
	k, err = strconv.Atoi(p[4])
	if err != nil {
		return 0, 0, 0, false
	}
	ct = -1
	for i, c := range auditCodes {
		if p[2][32:35] == c {
			ct = i
		}
	}
	return ct, h, k, ct >= 0
}

// findBlob is the blob with id (nil: none).
func (t *Tenant) findBlob(id string) (*auditBlob, bool) {
	ct, h, k, ok := parseContentID(id)
	if !ok {
		return nil, false
	}
	for _, b := range t.auditBucket(ct, h) {
		if b.k == k && b.id == id {
			return &b, true
		}
	}
	return nil, true
}

// auditBlobsIn lists the blobs of ct with from <= created < to, created at
// or before now, oldest first. The window spans a few buckets at most
// (callers cap it at 24 h, or 7 days for deliveries).
func (t *Tenant) auditBlobsIn(ct int, from, to, now time.Time) []auditBlob {
	var out []auditBlob
	for h := hourOf(from); h <= hourOf(to); h++ {
		for _, b := range t.auditBucket(ct, h) {
			if !b.created.Before(from) && b.created.Before(to) && !b.created.After(now) {
				out = append(out, b)
			}
		}
	}
	sort.Slice(out, func(i, j int) bool {
		if !out[i].created.Equal(out[j].created) {
			return out[i].created.Before(out[j].created)
		}
		return out[i].id < out[j].id
	})
	return out
}

func (t *Tenant) contentURI(id string) string {
	return "https://" + ManageHost + "/api/v1.0/" + t.w.tenantID + "/activity/feed/audit/" + id
}

// ---- records ----

// auditRecords generates the records of blob b (a re-delivery: those of
// its source, byte for byte).
func (t *Tenant) auditRecords(b *auditBlob) []json.RawMessage {
	if b.redelivery {
		src := t.auditBucket(b.ct, b.srcHour)
		if len(src) == 0 {
			return []json.RawMessage{}
		}
		return t.auditRecords(&src[0])
	}
	if b.abuse {
		return t.abuseAuditRecords(b.ct, b.slot)
	}
	r := rngFor(t.w.seed, lblAudit, uint64(b.ct), uint64(b.hour), uint64(b.k), 1)
	out := make([]json.RawMessage, 0, b.n)
	for i := 0; i < b.n; i++ {
		at := b.created.Add(-time.Second - time.Duration(r.Int64N(int64(40*time.Minute)))).Truncate(time.Second)
		var rec map[string]any
		switch b.ct {
		case ctAAD:
			rec = t.aadRecord(r, at)
		case ctExchange:
			rec = t.exchangeRecord(r, at)
		case ctSharePoint:
			rec = t.sharePointRecord(r, at)
		case ctGeneral:
			// The first records of every hour's first blob walk through the
			// Defender operations, so any day holds each of them.
			if (b.k == 0 && i < 3) || r.IntN(2) == 0 {
				op := -1
				if b.k == 0 && i < 3 {
					op = int((b.hour*3 + int64(i)) % int64(len(defenderOps)))
				}
				rec = t.defenderRecord(r, at, op)
			} else {
				rec = t.generalRecord(r, at)
			}
		default:
			rec = t.dlpRecord(r, at)
		}
		out = append(out, mustJSON(rec))
	}
	return out
}

// auditCommon are the common schema's fields; CreationTime has no Z.
func (t *Tenant) auditCommon(r *rand.Rand, at time.Time, recordType int, workload, op, user string, userType int) map[string]any {
	return map[string]any{
		"Id":             guid(r),
		"RecordType":     recordType,
		"CreationTime":   at.UTC().Format("2006-01-02T15:04:05"),
		"Operation":      op,
		"OrganizationId": t.w.tenantID,
		"UserType":       userType,
		"UserKey":        userKey(r, user),
		"Workload":       workload,
		"UserId":         user,
		"ClientIP":       fmt.Sprintf("203.0.113.%d", 1+r.IntN(254)),
		"ResultStatus":   "Succeeded",
		"Version":        1,
	}
}

func userKey(r *rand.Rand, user string) string {
	return fmt.Sprintf("1003%012X", strLabel(user)&0xffffffffffff)
}

func (t *Tenant) auditUser(r *rand.Rand) string { return t.w.users[r.IntN(len(t.w.users))].UPN }

func (t *Tenant) aadRecord(r *rand.Rand, at time.Time) map[string]any {
	user := t.auditUser(r)
	if r.IntN(3) > 0 {
		op := pick(r, []string{"UserLoggedIn", "UserLoggedIn", "UserLoginFailed"})
		rec := t.auditCommon(r, at, 15, "AzureActiveDirectory", op, user, 0)
		rec["AzureActiveDirectoryEventType"] = 1
		rec["ObjectId"] = pick(r, []string{"00000003-0000-0ff1-ce00-000000000000", "00000002-0000-0ff1-ce00-000000000000", "797f4846-ba00-4fd7-ba43-dac1f8f63013"})
		rec["ExtendedProperties"] = []map[string]string{{"Name": "UserAgent", "Value": "Mozilla/5.0 (Windows NT 10.0; Win64; x64)"}, {"Name": "RequestType", "Value": "OAuth2:Token"}, {"Name": "ResultStatusDetail", "Value": "Success"}}
		rec["Actor"] = []map[string]any{{"ID": user, "Type": 5}}
		rec["ActorContextId"] = t.w.tenantID
		rec["InterSystemsId"] = guid(r)
		rec["IntraSystemId"] = guid(r)
		rec["Target"] = []map[string]any{{"ID": rec["ObjectId"], "Type": 0}}
		rec["TargetContextId"] = t.w.tenantID
		rec["LoginStatus"] = 0
		rec["UserDomain"] = t.w.domain
		if op == "UserLoginFailed" {
			rec["ResultStatus"] = "Failed"
			rec["LogonError"] = "InvalidPasswordExpiredPassword"
			rec["LoginStatus"] = 50126
		}
		return rec
	}
	op := pick(r, []string{"Add member to role.", "Update user.", "Add service principal credentials.", "Consent to application."})
	rec := t.auditCommon(r, at, 8, "AzureActiveDirectory", op, user, 2)
	rec["AzureActiveDirectoryEventType"] = 1
	rec["ClientIP"] = nil
	target := t.auditUser(r)
	rec["ObjectId"] = target
	rec["Actor"] = []map[string]any{{"ID": user, "Type": 5}}
	rec["Target"] = []map[string]any{{"ID": target, "Type": 5}}
	rec["ActorContextId"] = t.w.tenantID
	rec["TargetContextId"] = t.w.tenantID
	rec["ExtendedProperties"] = []map[string]string{{"Name": "additionalDetails", "Value": "{}"}}
	return rec
}

func (t *Tenant) exchangeRecord(r *rand.Rand, at time.Time) map[string]any {
	user := t.auditUser(r)
	if r.IntN(5) == 0 {
		op := pick(r, []string{"Set-Mailbox", "New-InboxRule", "Add-MailboxPermission"})
		rec := t.auditCommon(r, at, 1, "Exchange", op, user, 2)
		rec["ObjectId"] = t.auditUser(r)
		rec["ResultStatus"] = "True"
		rec["Parameters"] = []map[string]string{{"Name": "Identity", "Value": rec["ObjectId"].(string)}}
		rec["ExternalAccess"] = false
		rec["OrganizationName"] = t.w.orgName + ".onmicrosoft.com"
		return rec
	}
	op := pick(r, []string{"MailItemsAccessed", "Send", "SoftDelete", "MoveToDeletedItems"})
	rt := 2
	if op == "MailItemsAccessed" {
		rt = 50
	}
	rec := t.auditCommon(r, at, rt, "Exchange", op, user, 0)
	rec["ObjectId"] = ""
	rec["MailboxOwnerUPN"] = user
	rec["LogonType"] = 0
	rec["ClientInfoString"] = "Client=OWA;Action=ViaProxy"
	rec["InternalLogonType"] = 0
	return rec
}

func (t *Tenant) sharePointRecord(r *rand.Rand, at time.Time) map[string]any {
	user := t.auditUser(r)
	op := pick(r, []string{"FileAccessed", "FileAccessed", "FileDownloaded", "FileModified", "FileUploaded", "SharingSet"})
	wl := pick(r, []string{"SharePoint", "OneDrive"})
	rec := t.auditCommon(r, at, 6, wl, op, user, 0)
	file := pick(r, []string{"Budget FY27.xlsx", "Incident-Runbook.docx", "Board deck.pptx", "vpn-config.txt"})
	site := "https://" + t.w.orgName + ".sharepoint.com/sites/" + pick(r, []string{"Finance", "SecOps", "HR", "Engineering"})
	rec["ObjectId"] = site + "/Shared Documents/" + file
	rec["SiteUrl"] = site + "/"
	rec["SourceFileName"] = file
	rec["SourceRelativeUrl"] = "Shared Documents"
	rec["SourceFileExtension"] = file[strings.LastIndexByte(file, '.')+1:]
	rec["ItemType"] = "File"
	rec["EventSource"] = "SharePoint"
	rec["UserAgent"] = "Microsoft Office Word 2014"
	return rec
}

func (t *Tenant) generalRecord(r *rand.Rand, at time.Time) map[string]any {
	user := t.auditUser(r)
	if r.IntN(2) == 0 {
		rec := t.auditCommon(r, at, 25, "MicrosoftTeams", pick(r, []string{"MessageSent", "MemberAdded", "TeamCreated"}), user, 0)
		rec["ObjectId"] = guid(r)
		rec["TeamName"] = pick(r, []string{"SOC", "Incident Bridge", "Finance"})
		return rec
	}
	rec := t.auditCommon(r, at, 20, "PowerBI", pick(r, []string{"ViewReport", "ViewDashboard", "ExportReport"}), user, 0)
	rec["ObjectId"] = pick(r, []string{"Sales Overview", "Security Posture", "Headcount"})
	rec["Activity"] = rec["Operation"]
	return rec
}

func (t *Tenant) dlpRecord(r *rand.Rand, at time.Time) map[string]any {
	user := t.auditUser(r)
	rt, wl := 13, "Exchange"
	if r.IntN(2) == 0 {
		rt, wl = 11, "SharePoint"
	}
	rec := t.auditCommon(r, at, rt, wl, "DlpRuleMatch", user, 0)
	rec["ObjectId"] = guid(r)
	rec["ClientIP"] = nil
	rec["IncidentId"] = guid(r)
	rec["PolicyDetails"] = []map[string]any{{
		"PolicyId": guid(r), "PolicyName": "U.S. Financial Data",
		"Rules": []map[string]any{{"RuleId": guid(r), "RuleName": "Credit card numbers", "Actions": []string{"NotifyUser"}, "Severity": "Medium"}},
	}}
	rec["SensitiveInfoDetectionIsIncluded"] = false
	return rec
}

// defenderOps are the Defender for Endpoint response actions (RecordType
// 110 MSDEResponseActions) and an indicator change (112).
var defenderOps = []string{"RunLiveResponseApi", "LiveResponseGetFile", "IsolateDevice", "RunLiveResponseSession",
	"CollectInvestigationPackage", "ReleaseFromIsolation", "RunAntiVirusScan", "AddIndicator"}

// defenderRecord is a Defender for Endpoint record; op indexes defenderOps
// (-1: any). DeviceId/DeviceName are the emulated devices', UserId an
// emulated analyst.
func (t *Tenant) defenderRecord(r *rand.Rand, at time.Time, op int) map[string]any {
	if op < 0 {
		op = r.IntN(len(defenderOps))
	}
	name := defenderOps[op]
	m := t.w.randomMachine(r)
	rt := 110
	if name == "AddIndicator" {
		rt = 112
	}
	rec := t.auditCommon(r, at, rt, DefenderWorkload, name, t.auditUser(r), 0)
	rec["ObjectId"] = m.ID
	rec["DeviceId"] = m.ID
	rec["DeviceName"] = m.DNS
	switch name {
	case "RunLiveResponseSession":
	case "RunLiveResponseApi":
		rec["ActionComment"] = "Triage via API"
		cmds := []string{
			`RunScript minidump.ps1 OfficeClickToRun; GetFile C:\windows\TEMP\OfficeClickToRun.dmp.zip`,
			`GetFile C:\Users\Public\Downloads\invoice.exe`,
			`RunScript Collect-Triage.ps1`,
		}
		if t.w.scenario != ScenarioDefault {
			cmds = cmds[1:] // a normal day dumps no memory
		}
		rec["CommandsString"] = pick(r, cmds)
	case "LiveResponseGetFile":
		files := []string{"invoice.exe", "OfficeClickToRun.dmp.zip", "payload.dll"}
		if t.w.scenario != ScenarioDefault {
			files = []string{"invoice.exe", "payload.dll"}
		}
		file := pick(r, files)
		rec["FileName"] = file
		rec["FileSHA256"] = hexN(r, 64)
		rec["FileSize"] = 1024 + r.IntN(8<<20)
	case "AddIndicator":
		delete(rec, "DeviceId")
		delete(rec, "DeviceName")
		rec["ObjectId"] = hexN(r, 64)
		rec["ActionComment"] = "Block hash from incident"
	default:
		rec["ActionComment"] = pick(r, []string{"Containment per IR-142", "Requested by SOC", "Routine triage"})
	}
	return rec
}

// ---- ground truth for tests ----

// AuditBlob describes one generated blob (ground truth: visibility by the
// data clock is not applied).
type AuditBlob struct {
	ContentType string
	ContentID   string
	ContentURI  string
	Created     time.Time
	// RedeliveryOf is the content id of the blob whose records this one
	// publishes again ("" for an original blob).
	RedeliveryOf string
}

// AuditBlobs lists the blobs of contentType created in [from, to), oldest
// first (at most 8 days of buckets are walked).
func (t *Tenant) AuditBlobs(contentType string, from, to time.Time) ([]AuditBlob, error) {
	ct := auditCTIndex(contentType)
	if ct < 0 {
		return nil, fmt.Errorf("sim: content type %q is unknown: use one of %s", contentType, strings.Join(auditCTs, ", "))
	}
	if to.Sub(from) > 8*24*time.Hour {
		return nil, fmt.Errorf("sim: AuditBlobs spans %s: ask for 8 days at most", to.Sub(from))
	}
	var out []AuditBlob
	for _, b := range t.auditBlobsIn(ct, from, to, to) {
		ab := AuditBlob{ContentType: contentType, ContentID: b.id, ContentURI: t.contentURI(b.id), Created: b.created}
		if b.redelivery {
			if src := t.auditBucket(b.ct, b.srcHour); len(src) > 0 {
				ab.RedeliveryOf = src[0].id
			}
		}
		out = append(out, ab)
	}
	return out, nil
}

// AuditRecords is the records of a blob as the service serves them (ground
// truth; no expiry applied).
func (t *Tenant) AuditRecords(contentID string) ([]json.RawMessage, error) {
	b, _ := t.findBlob(contentID)
	if b == nil {
		return nil, fmt.Errorf("sim: content %q does not exist", contentID)
	}
	return t.auditRecords(b), nil
}
