"""Code shared by the test modules (no tests here): reference models, synthetic data, servers, a browser."""
