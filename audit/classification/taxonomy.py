"""Categories a request can fall in: the default taxonomy and a tenant's own version of it.

A tenant may rename a category (label), disable it, give it extra examples, or add a category of
its own with a description and a few examples. Default categories are scored by the trained model
blended with example similarity; custom categories by similarity to their description and
examples (nearest centroid in the same TF-IDF space).
"""

from dataclasses import dataclass, field, replace


@dataclass(frozen=True)
class Category:
    key: str
    label: str
    description: str = ""
    examples: tuple[str, ...] = ()
    enabled: bool = True


@dataclass(frozen=True)
class Taxonomy:
    categories: tuple[Category, ...] = field(default_factory=tuple)

    def enabled(self) -> tuple[Category, ...]:
        return tuple(category for category in self.categories if category.enabled)

    def get(self, key: str) -> Category | None:
        return next((category for category in self.categories if category.key == key), None)

    def keys(self) -> tuple[str, ...]:
        return tuple(category.key for category in self.categories)

    def with_category(self, category: Category) -> "Taxonomy":
        """A copy where `category` replaces the one with the same key, or is appended."""
        if self.get(category.key) is None:
            return Taxonomy((*self.categories, category))
        return Taxonomy(tuple(category if c.key == category.key else c for c in self.categories))

    def renamed(self, key: str, label: str) -> "Taxonomy":
        existing = self.get(key)
        if existing is None:
            raise KeyError(key)
        return self.with_category(replace(existing, label=label))

    def disabled(self, key: str) -> "Taxonomy":
        existing = self.get(key)
        if existing is None:
            raise KeyError(key)
        return self.with_category(replace(existing, enabled=False))


DEFAULT_CATEGORIES: tuple[Category, ...] = (
    Category(
        "software_development",
        "Software development",
        "Writing, reviewing, debugging, testing or explaining code, queries, configuration, "
        "infrastructure and developer tooling.",
        (
            "Why does this Python function raise a KeyError when the dict is empty?",
            "Write a SQL migration that adds an index on orders.created_at",
            "Review this pull request diff and point out bugs",
        ),
    ),
    Category(
        "content_writing",
        "Content writing",
        "Drafting or editing text meant for others to read: emails, blog posts, marketing copy, "
        "announcements, documentation prose, job ads, reports.",
        (
            "Draft a LinkedIn post announcing our new office in Lyon",
            "Rewrite this email to the client so it sounds more polite",
            "Write product copy for our new ergonomic chair, 150 words",
        ),
    ),
    Category(
        "data_analysis",
        "Data analysis",
        "Analysing numbers and tables: computing metrics, interpreting results, building "
        "spreadsheet formulas, statistics, charts and forecasts.",
        (
            "Here is our monthly churn by cohort, what trends do you see?",
            "Which Excel formula gives the weighted average of column C by column D?",
            "Is the difference in conversion rate between A and B statistically significant?",
        ),
    ),
    Category(
        "customer_support",
        "Customer support",
        "Answering or triaging a customer's question, complaint or ticket, on behalf of the "
        "company, including drafting the reply to the customer.",
        (
            "A customer says they were charged twice this month, draft a reply",
            "Classify this support ticket as billing, bug or feature request",
            "How should I respond to a user who cannot reset their password?",
        ),
    ),
    Category(
        "information_extraction",
        "Information extraction",
        "Pulling structured fields out of unstructured text: parsing invoices, contracts, CVs, "
        "forms or emails into JSON or tables.",
        (
            "Extract the invoice number, date, total and VAT from this invoice as JSON",
            "List every person and company mentioned in this article",
            "Pull the start date, salary and notice period out of this contract",
        ),
    ),
    Category(
        "summarization",
        "Summarization",
        "Condensing a longer text (meeting notes, articles, reports, threads) into a shorter "
        "summary, key points or TL;DR.",
        (
            "Summarize this meeting transcript in five bullet points",
            "TL;DR of this 20-page report for the board",
            "Give me the key takeaways of the thread below",
        ),
    ),
    Category(
        "translation",
        "Translation",
        "Translating text between languages or localising it for another market.",
        (
            "Translate this paragraph into German, keep the formal tone",
            "Traduis ce courriel en anglais",
            "How would you say 'quarterly business review' in Japanese?",
        ),
    ),
    Category(
        "creative_ideation",
        "Creative ideation",
        "Brainstorming ideas, names, slogans, campaign concepts, workshop formats or "
        "storylines for work.",
        (
            "Give me 20 name ideas for our new analytics feature",
            "Brainstorm themes for our team offsite",
            "Suggest angles for a campaign aimed at small accounting firms",
        ),
    ),
    Category(
        "learning_qa",
        "Learning and Q&A",
        "Asking to understand a concept, fact or method related to work: explanations, "
        "comparisons, how things work.",
        (
            "Explain the difference between a mutex and a semaphore",
            "What is IFRS 16 and how does it affect leases?",
            "How does OAuth 2.0 authorization code flow work?",
        ),
    ),
    Category(
        "personal",
        "Personal (non-work)",
        "Clearly non-work use: recipes, holidays, personal shopping, dating, hobbies, "
        "homework of one's children, personal finances, games.",
        (
            "Plan a 5-day trip to Lisbon with kids",
            "What can I cook tonight with chickpeas and spinach?",
            "Write a birthday poem for my sister",
        ),
    ),
)

DEFAULT_TAXONOMY = Taxonomy(DEFAULT_CATEGORIES)
DEFAULT_KEYS: tuple[str, ...] = DEFAULT_TAXONOMY.keys()
