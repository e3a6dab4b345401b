"""Local infrastructure: the Tansu broker, a standalone Flink cluster, connector jars."""
