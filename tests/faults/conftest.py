def pytest_report_header(config):
    from tests.faults.test_worker_kills import SEED

    return f"faults seed {SEED} (FAULTS_SEED={SEED} reproduces the kill points)"
