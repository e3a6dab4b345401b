from stratiflow.local.procs import PYFLINK_RUNTIME_VARS, job_environ


def test_job_environ_drops_pyflink_runtime_state():
    base = {
        "PATH": "/bin",
        "PYFLINK_GATEWAY_DISABLED": "true",
        "PYFLINK_GATEWAY_PORT": "1234",
        "PYTHON_LOOPBACK_SERVER_ADDRESS": "localhost:1",
        "FLINK_CONF_DIR": "/x",
        "HOME": "/h",
    }
    env = job_environ(base)
    assert env == {"PATH": "/bin", "HOME": "/h"}
    assert not set(env) & set(PYFLINK_RUNTIME_VARS)
