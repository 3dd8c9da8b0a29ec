package tables

// The auditlog source's tables: one per Management Activity API content
// type, and the Defender for Endpoint response actions. Every table
// carries the audit record's common schema; workload-specific fields
// that are not described still arrive (Sentinel: add the columns, or
// read them from the record).
func init() {
	all = append(all,
		table("O365AuditAzureActiveDirectory", "auditlog", false,
			"Unified Audit Log, content type Audit.AzureActiveDirectory (Entra sign-ins and directory changes), one record per audit record.",
			audit(
				c("AzureActiveDirectoryEventType", Long, "0 account logon, 1 Entra application audit."),
				c("ExtendedProperties", Dynamic, "Name/Value pairs of the event."),
				c("ModifiedProperties", Dynamic, "Properties changed, with old and new values."),
				c("Actor", Dynamic, "Who acted ([{ID, Type}])."),
				c("ActorContextId", String, "Tenant of the actor."),
				c("ActorIpAddress", String, "IP address of the actor."),
				c("Target", Dynamic, "What was acted on ([{ID, Type}])."),
				c("TargetContextId", String, "Tenant of the target."),
				c("InterSystemsId", String, "Correlation id across services."),
				c("IntraSystemId", String, "Id within Entra."),
				c("ApplicationId", String, "Application of a sign-in."),
				c("LogonError", String, "Sign-in failure reason."),
				c("SupportTicketId", String, "Support ticket of an act-on-behalf-of action."),
			)...),
		table("O365AuditExchange", "auditlog", false,
			"Unified Audit Log, content type Audit.Exchange (mailbox and admin audit), one record per audit record.",
			audit(
				c("ExternalAccess", Boolean, "Whether the action was by a Microsoft datacenter admin or external account."),
				c("OrganizationName", String, "Tenant name."),
				c("OriginatingServer", String, "Server that ran the command."),
				c("Parameters", Dynamic, "Cmdlet parameters (admin audit)."),
				c("MailboxGuid", String, "Mailbox GUID."),
				c("MailboxOwnerUPN", String, "Mailbox owner."),
				c("LogonType", Long, "0 owner, 1 admin, 2 delegate …"),
				c("ClientInfoString", String, "Client that acted."),
				c("Item", Dynamic, "Item acted on."),
				c("Folder", Dynamic, "Folder acted on."),
				c("AffectedItems", Dynamic, "Items acted on."),
			)...),
		table("O365AuditSharePoint", "auditlog", false,
			"Unified Audit Log, content type Audit.SharePoint (SharePoint and OneDrive), one record per audit record.",
			audit(
				c("Site", String, "Site GUID."),
				c("SiteUrl", String, "Site URL."),
				c("ItemType", String, "File, Folder, Web, Site, List …"),
				c("EventSource", String, "SharePoint or ObjectModel."),
				c("SourceRelativeUrl", String, "Folder of the file."),
				c("SourceFileName", String, "File name."),
				c("SourceFileExtension", String, "File extension."),
				c("UserAgent", String, "Client user agent."),
				c("EventData", String, "Additional event data."),
			)...),
		table("O365AuditGeneral", "auditlog", false,
			"Unified Audit Log, content type Audit.General (every other workload, incl. Microsoft Defender for Endpoint), one record per audit record.",
			audit(mdeColumns()...)...),
		table("O365DLPAll", "auditlog", false,
			"Unified Audit Log, content type DLP.All (data loss prevention events), one record per audit record.",
			audit(
				c("IncidentId", String, "DLP incident id."),
				c("PolicyDetails", Dynamic, "Policies and rules matched."),
				c("SensitiveInfoDetectionIsIncluded", Boolean, "Whether sensitive data is included (needs ActivityFeed.ReadDlp)."),
				c("ExchangeMetaData", Dynamic, "Message details (Exchange)."),
				c("SharePointMetaData", Dynamic, "File details (SharePoint/OneDrive)."),
			)...),
		table("MdeAuditResponseActions", "auditlog", false,
			"Microsoft Defender for Endpoint response actions from the Unified Audit Log (Workload MicrosoftDefenderForEndpoint, RecordType 110 MSDEResponseActions: Live Response sessions and commands, file collection, investigation packages, isolation, scans); the same records also land in O365AuditGeneral.",
			audit(mdeColumns()...)...),
	)
}

// audit is the audit record's common schema followed by extra columns.
func audit(extra ...Column) []Column {
	return append([]Column{
		renamed("Id", "AuditRecordId", String, "Audit record id (GUID)"),
		c("RecordType", Long, "Record type (e.g. 110 MSDEResponseActions)."),
		c("CreationTime", DateTime, "When the audited action happened (UTC; the record's TimeGenerated)."),
		c("Operation", String, "Audited operation, e.g. RunLiveResponseApi, IsolateDevice."),
		c("OrganizationId", String, "Tenant GUID."),
		c("UserType", Long, "0 Regular, 2 Admin, 4 System, 5 Application, 6 ServicePrincipal …"),
		c("UserKey", String, "Alternative user id."),
		c("Workload", String, "Service, e.g. MicrosoftDefenderForEndpoint, AzureActiveDirectory."),
		c("ResultStatus", String, "Outcome, e.g. Succeeded, Failed."),
		c("ObjectId", String, "Object acted on (for Defender: the device id)."),
		c("UserId", String, "User (UPN) or app that acted."),
		c("ClientIP", String, "Client IP address."),
		c("Scope", Long, "0 online, 1 on-premises."),
		c("AppAccessContext", Dynamic, "Application context of the action."),
		c("Version", Long, "Schema version."),
	}, extra...)
}

// mdeColumns are the Defender for Endpoint fields seen in audit records.
func mdeColumns() []Column {
	return []Column{
		c("DeviceName", String, "Device name (Defender for Endpoint)."),
		c("DeviceId", String, "Device id (Defender for Endpoint)."),
		c("ActionComment", String, "Operator comment of the response action."),
		c("CommandsString", String, "Live Response commands run (RunLiveResponseApi)."),
		c("FileName", String, "File collected or acted on."),
		c("FileSHA256", String, "SHA-256 of that file."),
		c("FileSize", Long, "Size of that file."),
	}
}
