//! The wire contract between lambda-forwarder and ec2-service.
