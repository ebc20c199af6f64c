"""Word lists and sizes for plausible synthetic Totesys values (no randomness here)."""

from __future__ import annotations

FIRST_NAMES = (
    "Amelia", "Oliver", "Isla", "George", "Ava", "Harry", "Mia", "Jack", "Freya", "Noah",
    "Grace", "Leo", "Ruby", "Oscar", "Ivy", "Arthur", "Poppy", "Theo", "Lily", "Alfie",
    "Evie", "Jacob", "Sophie", "Henry", "Daisy", "Finley", "Imogen", "Rory", "Nadia", "Kwame",
)  # fmt: skip
LAST_NAMES = (
    "Hartley", "Okafor", "Brennan", "Whitfield", "Nakamura", "Castellano", "Lindqvist",
    "Patel", "Mbeki", "Fairbairn", "Kowalski", "Oduya", "Pemberton", "Achterberg", "Rahman",
    "Delacroix", "Thornbury", "Valdez", "Ishikawa", "MacLeod", "Novak", "Quinlan", "Sorensen",
    "Tremaine", "Underwood", "Vasquez", "Winterbottom", "Yilmaz", "Zielinski", "Abernathy",
)  # fmt: skip
DEPARTMENTS = (
    ("Sales", "Manchester"),
    ("Purchasing", "Manchester"),
    ("Production", "Leeds"),
    ("Dispatch", "Leeds"),
    ("Finance", "Manchester"),
    ("Facilities", "Manchester"),
    ("Communications", "Leeds"),
    ("HR", "Leeds"),
)
RENAMES = {
    "Sales": "Sales & Marketing",
    "Purchasing": "Procurement",
    "Production": "Manufacturing",
    "Dispatch": "Logistics",
    "Finance": "Accounts",
    "Facilities": "Estates",
    "Communications": "Marketing",
    "HR": "People",
}
STREET_NAMES = (
    "Harbour", "Kestrel", "Willow", "Marlowe", "Orchard", "Beacon", "Larch", "Foxglove",
    "Cobalt", "Juniper", "Aldgate", "Bramble", "Cedar", "Ferris", "Granby", "Hollis",
)  # fmt: skip
STREET_SUFFIXES = ("Road", "Street", "Lane", "Crescent", "Avenue", "Way", "Cliffs", "Fort")
CITIES = (
    "Port Ellison", "New Marlow", "Aldbridge", "Westhaven", "Lake Corrin", "East Tamsin",
    "Fenwick", "North Oriel", "Kingsmere", "Bramford", "South Avalon", "Glenrothy",
    "Harrowgate", "Millbrook", "Silverton", "Redcliffe", "Ashby Vale", "Dunmore",
)  # fmt: skip
DISTRICTS = (
    "Avon", "Bedfordshire", "Berkshire", "Buckinghamshire", "Cambridgeshire", "Cheshire",
    "Cumbria", "Derbyshire", "Devon", "Dorset", "Essex", "Kent", "Norfolk", "Surrey",
)  # fmt: skip
COUNTRIES = (
    "United Kingdom", "Ireland", "France", "Germany", "Netherlands", "Spain", "Portugal",
    "Italy", "Norway", "Sweden", "Poland", "Canada", "United States", "Japan", "Australia",
    "New Zealand", "Kenya", "Brazil", "Chile", "Iceland",
)  # fmt: skip
COMPANY_FORMS = ("{a} and Sons", "{a} Inc", "{a} Group", "{a} LLC", "{a}, {b} and {c}", "{a}-{b}")
MATERIALS = (
    "Wooden", "Steel", "Cotton", "Granite", "Bronze", "Soft", "Plastic", "Frozen", "Rubber",
    "Concrete", "Metal", "Fresh", "Leather", "Linen",
)  # fmt: skip
FILE_LOCATIONS = (
    "/usr", "/usr/share", "/usr/local/bin", "/opt", "/opt/lib", "/var/tmp", "/home/user",
    "/srv", "/private", "/etc/periodic", "/Library", "/System", "/mnt", "/media",
)  # fmt: skip
CURRENCIES = ("GBP", "USD", "EUR", "CHF", "JPY")
PAYMENT_TYPES = ("SALES_RECEIPT", "SALES_REFUND", "PURCHASE_PAYMENT", "PURCHASE_REFUND")

N_DEPARTMENTS = len(DEPARTMENTS)
N_STAFF = 20
N_ADDRESSES = 30
N_COUNTERPARTIES = 20
