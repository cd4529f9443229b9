"""Issue 13 part 6: an error type that tags reviews is never deleted (its tags would go
silently with it); it is archived: kept on old reviews, no longer offered for new ones."""

from __future__ import annotations

import pytest
from django.contrib.auth.models import User
from django.db.models import ProtectedError
from django.urls import reverse

from annotations.models import ErrorType
from review.forms import DecisionForm
from review.models import Review
from review.queue import QueueFilter, claim_next
from review.reviews import submit_review
from tests.conftest import PASSWORD


def test_a_used_error_type_is_protected_and_archived_instead(make_run, reviewer, settings, client):
    settings.REVIEW_DOUBLE_FRACTION = 0.0
    make_run(n_samples=1)
    calc = ErrorType.objects.get(slug="calculation")
    review = submit_review(claim_next(reviewer, QueueFilter(queue="matched")), reviewer, "flawed", error_types=[calc])
    with pytest.raises(ProtectedError, match="archive it instead"):
        calc.delete()
    with pytest.raises(ProtectedError):
        ErrorType.objects.filter(pk=calc.pk).delete()
    assert list(Review.objects.get(pk=review.pk).error_types.all()) == [calc]

    calc.archived = True
    calc.save()
    assert calc not in ErrorType.objects.active()
    assert calc not in DecisionForm().fields["error_types"].queryset
    assert list(review.error_types.all()) == [calc]  # old tags stay

    User.objects.create_superuser("root", "r@example.org", PASSWORD)
    client.login(username="root", password=PASSWORD)
    unused = ErrorType.objects.exclude(pk=calc.pk).first()
    response = client.post(reverse("admin:annotations_errortype_delete", args=[unused.pk]), {"post": "yes"})
    assert response.status_code == 403 and ErrorType.objects.filter(pk=unused.pk).exists()
