mod backups;
mod diff;
mod errors;
mod harness;
mod instances;
mod reconcile;
mod s3;
mod temporary;
