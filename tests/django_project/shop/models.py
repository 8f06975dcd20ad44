"""A model whose rows are written in the same transactions as the jobs."""

from __future__ import annotations

from django.db import models


class Order(models.Model):
    id: int
    email: models.CharField[str, str] = models.CharField(max_length=200)
