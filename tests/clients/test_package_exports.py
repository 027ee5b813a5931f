"""``from clients import CincerClient`` works: the package exports the client."""
import clients
from clients import client as client_module


def test_the_client_is_exported_from_the_package():
    from clients import ApiError, CincerClient, IngestError
    assert CincerClient is client_module.CincerClient
    assert ApiError is client_module.ApiError and IngestError is client_module.IngestError
    assert {"CincerClient", "ApiError", "IngestError"} <= set(clients.__all__)
    assert CincerClient("http://127.0.0.1:1/api/v1", "t").root == "http://127.0.0.1:1"
