"""Local infrastructure: an Apache Kafka broker, a standalone Flink cluster, the pinned jars."""
