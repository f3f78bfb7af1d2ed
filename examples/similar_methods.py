"""A file of similar methods: what prompt-lookup drafting is good at (used by `steercode bench decode`)."""


class Contact:
    """A contact record with validated fields."""

    def __init__(self):
        self._fields = {}

    def get_name(self):
        """Return the name of this contact, or None when it is not set."""
        return self._fields.get("name")

    def set_name(self, value):
        """Set the name of this contact; an empty value clears it."""
        if not value:
            self._fields.pop("name", None)
            return
        self._fields["name"] = str(value).strip()

    def get_email(self):
        """Return the email of this contact, or None when it is not set."""
        return self._fields.get("email")

    def set_email(self, value):
        """Set the email of this contact; an empty value clears it."""
        if not value:
            self._fields.pop("email", None)
            return
        self._fields["email"] = str(value).strip()

    def get_phone(self):
        """Return the phone of this contact, or None when it is not set."""
        return self._fields.get("phone")

    def set_phone(self, value):
        """Set the phone of this contact; an empty value clears it."""
        if not value:
            self._fields.pop("phone", None)
            return
        self._fields["phone"] = str(value).strip()

    def get_address(self):
        """Return the address of this contact, or None when it is not set."""
        return self._fields.get("address")

    def set_address(self, value):
        """Set the address of this contact; an empty value clears it."""
        if not value:
            self._fields.pop("address", None)
            return
        self._fields["address"] = str(value).strip()

    def get_city(self):
        """Return the city of this contact, or None when it is not set."""
        return self._fields.get("city")

    def set_city(self, value):
        """Set the city of this contact; an empty value clears it."""
        if not value:
            self._fields.pop("city", None)
            return
        self._fields["city"] = str(value).strip()

    def get_country(self):
        """Return the country of this contact, or None when it is not set."""
        return self._fields.get("country")

    def set_country(self, value):
        """Set the country of this contact; an empty value clears it."""
        if not value:
            self._fields.pop("country", None)
            return
        self._fields["country"] = str(value).strip()

    def get_postcode(self):
        """Return the postcode of this contact, or None when it is not set."""
        return self._fields.get("postcode")

    def set_postcode(self, value):
        """Set the postcode of this contact; an empty value clears it."""
        if not value:
            self._fields.pop("postcode", None)
            return
        self._fields["postcode"] = str(value).strip()

    def get_company(self):
        """Return the company of this contact, or None when it is not set."""
        return self._fields.get("company")

    def set_company(self, value):
        """Set the company of this contact; an empty value clears it."""
        if not value:
            self._fields.pop("company", None)
            return
        self._fields["company"] = str(value).strip()

    def get_title(self):
        """Return the title of this contact, or None when it is not set."""
        return self._fields.get("title")

    def set_title(self, value):
        """Set the title of this contact; an empty value clears it."""
        if not value:
            self._fields.pop("title", None)
            return
        self._fields["title"] = str(value).strip()

    def get_website(self):
        """Return the website of this contact, or None when it is not set."""
        return self._fields.get("website")

    def set_website(self, value):
        """Set the website of this contact; an empty value clears it."""
        if not value:
            self._fields.pop("website", None)
            return
        self._fields["website"] = str(value).strip()

    def get_birthday(self):
        """Return the birthday of this contact, or None when it is not set."""
        return self._fields.get("birthday")

    def set_birthday(self, value):
        """Set the birthday of this contact; an empty value clears it."""
        if not value:
            self._fields.pop("birthday", None)
            return
        self._fields["birthday"] = str(value).strip()

    def get_language(self):
        """Return the language of this contact, or None when it is not set."""
        return self._fields.get("language")

    def set_language(self, value):
        """Set the language of this contact; an empty value clears it."""
        if not value:
            self._fields.pop("language", None)
            return
        self._fields["language"] = str(value).strip()

    def get_timezone(self):
        """Return the timezone of this contact, or None when it is not set."""
        return self._fields.get("timezone")

    def set_timezone(self, value):
        """Set the timezone of this contact; an empty value clears it."""
        if not value:
            self._fields.pop("timezone", None)
            return
        self._fields["timezone"] = str(value).strip()

    def get_currency(self):
        """Return the currency of this contact, or None when it is not set."""
        return self._fields.get("currency")

    def set_currency(self, value):
        """Set the currency of this contact; an empty value clears it."""
        if not value:
            self._fields.pop("currency", None)
            return
        self._fields["currency"] = str(value).strip()

    def get_avatar(self):
        """Return the avatar of this contact, or None when it is not set."""
        return self._fields.get("avatar")

    def set_avatar(self, value):
        """Set the avatar of this contact; an empty value clears it."""
        if not value:
            self._fields.pop("avatar", None)
            return
        self._fields["avatar"] = str(value).strip()

    def get_nickname(self):
        """Return the nickname of this contact, or None when it is not set."""
        return self._fields.get("nickname")

    def set_nickname(self, value):
        """Set the nickname of this contact; an empty value clears it."""
        if not value:
            self._fields.pop("nickname", None)
            return
        self._fields["nickname"] = str(value).strip()

    def get_department(self):
        """Return the department of this contact, or None when it is not set."""
        return self._fields.get("department")

    def set_department(self, value):
        """Set the department of this contact; an empty value clears it."""
        if not value:
            self._fields.pop("department", None)
            return
        self._fields["department"] = str(value).strip()

    def get_manager(self):
        """Return the manager of this contact, or None when it is not set."""
        return self._fields.get("manager")

    def set_manager(self, value):
        """Set the manager of this contact; an empty value clears it."""
        if not value:
            self._fields.pop("manager", None)
            return
        self._fields["manager"] = str(value).strip()

