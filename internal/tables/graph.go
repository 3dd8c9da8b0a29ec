package tables

// The tables of the sources that read Microsoft Graph.
func init() {
	all = append(all,
		table("MdeDetectionRules", "detectionrules", true,
			"Custom detection rules from Microsoft Graph (security/rules/detectionRules snapshot), each rule as Graph returns it: who created and last changed it and when, the query, schedule, last run and alert template.",
			renamed("id", "RuleId", String, "Custom detection rule id (a string in Graph)"),
			c("displayName", String, "Rule name."),
			c("isEnabled", Boolean, "Whether the rule is turned on (false when disabled by a user or auto-disabled by the service)."),
			c("createdBy", String, "User or application that created the rule."),
			c("createdDateTime", DateTime, "When the rule was created (UTC)."),
			c("lastModifiedBy", String, "User or application that last changed the rule (the service, e.g. \"Microsoft Defender\", when it auto-disabled it)."),
			c("lastModifiedDateTime", DateTime, "When the rule was last changed (UTC)."),
			c("detectorId", String, "Id of the rule's detector (GUID)."),
			c("queryCondition", Dynamic, "The advanced hunting query: {queryText, lastModifiedDateTime (deprecated)}."),
			c("schedule", Dynamic, "How often the rule runs and when next: {period (\"0\" continuous, 1H, 3H, 12H, 24H), nextRunDateTime}."),
			c("lastRunDetails", Dynamic, "The last run: {lastRunDateTime, status (running, completed, failed, partiallyFailed), failureReason, errorCode}; deprecated: Graph removes run details on 2026-10-01."),
			c("detectionAction", Dynamic, "What a match does: {alertTemplate {title, description, severity, category, recommendedActions, mitreTechniques, impactedAssets}, organizationalScope, responseActions}."),
		),
	)
}
