def pytest_configure(config):
    # Tests that need a CUDA GPU (tests/test_cuda.py); they skip without
    # one. Run them alone with: pytest -m cuda tests/test_cuda.py
    config.addinivalue_line(
        'markers', 'cuda: needs a CUDA GPU; skipped when none is present')
