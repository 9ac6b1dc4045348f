//! The forwarder: S3 and SQS events in, signed job requests out.
