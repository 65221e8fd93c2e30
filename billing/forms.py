from django import forms

from billing.models import PlanPrice
from billing.selectors import plan_prices_offered


class CheckoutIntentForm(forms.Form):
    plan_price = forms.ModelChoiceField(queryset=PlanPrice.objects.none())

    def __init__(self, *args: object, **kwargs: object) -> None:
        super().__init__(*args, **kwargs)  # type: ignore[arg-type]
        offered = [price.pk for price in plan_prices_offered()]
        self.fields["plan_price"].queryset = PlanPrice.objects.filter(  # type: ignore[attr-defined]
            pk__in=offered
        )
