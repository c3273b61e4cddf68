-- measure_city_reference: city-level figures the bureau uploads (population, general
-- upper-secondary admissions, education budget). They belong to a city, not a school.
-- Output grain: one row per (year, city_name, measure_id), school_code null.
with city_reference as (
    select * from curated_city_reference
),

per_city as (
    select
        year,
        city_name,
        sum(resident_population_count)::double as resident_population_count,
        sum(general_high_school_admissions_count)::double as general_high_school_admissions_count,
        sum(public_education_budget_yuan)::double as public_education_budget_yuan
    from city_reference
    group by year, city_name
),

final as (
    unpivot per_city
    on columns(* exclude (year, city_name))
    into name measure_id value measure_value
)

select year, null::varchar as school_code, city_name, measure_id, measure_value
from final
where measure_value is not null
