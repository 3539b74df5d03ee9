mod backups;
mod errors;
mod harness;
mod instances;
mod reconcile;
mod s3;
mod temporary;
