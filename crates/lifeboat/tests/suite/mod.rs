mod backups;
mod errors;
mod harness;
mod instances;
mod reconcile;
mod temporary;
