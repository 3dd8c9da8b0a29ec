package tables

// Writers of the tables no source writes.
const (
	WriterPipeline = "every snapshot source (the pipeline)"
	WriterDetect   = "detect (the detection pack's findings)"
)

// MdeConfigurationChanges is written by the pipeline for every snapshot
// source: one row per changed field of a modified item, one per added or
// removed item (no rows for a first snapshot), so one rule can watch
// every configuration change.
func init() {
	all = append(all, Table{
		Name: "MdeConfigurationChanges", Source: WriterPipeline,
		Description: "Every configuration change of every snapshot data set: one row per changed field (per item when added or removed), with before and after, the interval it happened in, and who and when where the item says.",
		Columns: append(standard(false),
			c("DataSet", String, "Table of the data set that changed, e.g. MdeAdvancedFeatureSettings."),
			c("SnapshotKey", String, "Key of the item within the data set."),
			c("ChangeType", String, "Added, Modified or Removed."),
			c("FieldPath", String, "Modified: the changed value's path (dotted, [i], [Name=x]); empty for Added and Removed."),
			c("Before", String, "The value before: a string as it is, other values as compact JSON; empty when absent."),
			c("After", String, "The value after, written the same way; empty when absent."),
			c("PreviousSnapshotTime", DateTime, "The snapshot before: the change happened after it."),
			c("SnapshotTime", DateTime, "The snapshot that saw the change (the record's TimeGenerated)."),
			c("ChangedBy", String, "Who made the change, when the item records it."),
			c("ChangedAt", DateTime, "When the change was made, when the item records it."),
			c("ChangeRecordId", String, "RecordId of the full change record in the data set's table."),
			c("Item", Dynamic, "The item after the change (before, when removed)."),
		),
	})
}

// DefenderHarvesterFindings holds what the detection pack's rules found
// when the harvester runs them itself (detect --emit).
func init() {
	all = append(all, Table{
		Name: "DefenderHarvesterFindings", Source: WriterDetect,
		Description: "Findings of the detection pack's rules run by the harvester (detect --emit): one record per matching record, or per group that reached a rule's threshold.",
		Columns: append(standard(false),
			c("RuleId", String, "Rule id (DH-NNN), its folder in detections/."),
			c("RuleTitle", String, "Rule title."),
			c("Severity", String, "Informational, Low, Medium or High."),
			c("Tactics", Dynamic, "ATT&CK tactics."),
			c("Techniques", Dynamic, "ATT&CK techniques."),
			c("DataSet", String, "Table the rule read."),
			c("FirstSeen", DateTime, "Time of the first matching record."),
			c("LastSeen", DateTime, "Time of the last matching record (the record's TimeGenerated)."),
			c("Actor", String, "Who acted, when the rule names it."),
			c("Group", Dynamic, "A threshold rule's group (column → value)."),
			c("Count", Long, "Matching records."),
			c("Distinct", Long, "Distinct values a threshold counted."),
			c("Evidence", Dynamic, "The rule's columns of up to 20 matching records."),
			c("RecordIds", Dynamic, "RecordIds of up to 20 matching records."),
		),
	})
}
