"""Federated training with Flower (#24): each hospital a node that trains on its own data;
only model parameters and metrics travel."""
