from proxy.gateway.app import Gateway

__all__ = ["Gateway"]
